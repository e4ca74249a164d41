//! Python exceptions for casher's errors.

use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    _native,
    CasherError,
    PyException,
    "Base class of casher's own errors."
);
