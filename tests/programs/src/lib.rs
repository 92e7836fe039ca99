//! Guest programs used by Lamina's tests: each binary exercises one behaviour of the runtime.
