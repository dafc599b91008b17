//! CastBrick Push (skeleton; filled in by the core commit).
