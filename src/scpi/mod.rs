//! SCPI transports, client and dialect tables.
