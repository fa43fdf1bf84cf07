//! WinRM (WS-Management remote shells, MS-WSMV) for Windows hosts without OpenSSH: the
//! envelopes ecfleet sends ([`envelope`]), the replies it reads ([`response`]) through a
//! namespace-resolved XML tree ([`xml`]), with the protocol's names in [`ns`]. docs/winrm.md
//! says what is built and what was verified only against stand-ins.

pub mod envelope;
pub mod framing;
pub mod http;
pub mod ns;
pub mod ntlm;
pub mod response;
pub mod shell;
pub mod xml;
