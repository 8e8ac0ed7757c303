//! graphc-macros: the `graph!` macro, a thin shell over the graphc compiler.
