//! graphc-tests: the fixture corpus (tests/fixtures) and the tests that run it.
