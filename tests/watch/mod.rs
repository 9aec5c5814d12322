//! `peftc watch` driven as a child process: its plain `[watch] ...` lines are read with timeouts.
mod checking;
mod running;
mod support;
