"""Every SQL statement that reads or writes a table, one module per store.

* :mod:`.warehouse` — the DuckDB warehouse file: table definitions (the identifier
  whitelist), connections, atomic partition writes, and every read of the raw,
  feature, ledger and score tables;
* :mod:`.features` — the two executions of the feature spec (serving, training) and
  the labels;
* :mod:`.registry` — the versioned category mapping and the model registry (the
  deployed-model lookup exists here once);
* :mod:`.alerts` — the alerts file.

Functions take a connection and plain values and return frames, sets or numbers; no
Dagster types cross this line. It is the seam a second engine implements.
"""
