//! The examples check cleanly once their data and model files exist (stand-ins in a temp copy).
