"""The embedded synthetic world, its scenario knobs and the fault injection.

Everything that makes the embedded source behave like a troubled production system
lives here: the world itself (:mod:`.world`), its settings and incident knobs
(:mod:`.settings`, the ``[scenario]`` section of a settings file) and the source that
serves it (:mod:`.source`). The production path reaches none of it directly: it asks
the configured :class:`risk_assets.sources.Source` for rows (and, for the embedded
source only, for the serving-skew fault); a landing source has no fault to switch on,
and the settings refuse a ``[scenario]`` fault together with ``source.kind = "landing"``.
"""
