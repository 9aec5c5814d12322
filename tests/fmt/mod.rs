//! Tests of `peftc fmt`: idempotence and unchanged meaning on every example, stdlib module and
//! UI case that parses; snapshots of messy inputs; the command line.
mod cli;
mod corpus;
mod messy;
