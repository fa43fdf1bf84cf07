//! Kerberos for WinRM, through the Negotiate (SPNEGO) scheme as Windows' own client does it:
//! the ticket exchange with the KDC (sspi's Kerberos; each KDC request comes back to us and
//! is sent the way the host is reached, jump hosts included), the SPNEGO tokens on the HTTP
//! connection with mutual authentication, and then the session's message encryption (RFC 4121
//! wrap tokens, MS-WSMV's `HTTP-SPNEGO-session-encrypted`). A KDC's refusal is read from its
//! KRB-ERROR, so that a failure says which it was (RFC 4120 §7.5.9) and what to do.

use std::time::Duration;

use sspi::builders::{AcquireCredentialsHandle, WithoutCredentialUse};
use sspi::generator::GeneratorState;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, DataRepresentation,
    EncryptionFlags, KerberosConfig, Negotiate, NegotiateConfig, NetworkRequest, SecurityBuffer,
    SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::ErrorKind;
use crate::transport::TransportError;
use crate::transport::dial::{Dialer, endpoint};

/// Most a KDC reply may be (a ticket with a large PAC is tens of KiB).
const MAX_KDC_REPLY: usize = 1 << 20;

/// Who logs in where: the account (any of `user`, `REALM\user`, `user@REALM`), its password,
/// the realm and its KDC, and the host's service principal (`HTTP/<fqdn>`).
pub struct Login {
    pub user: String,
    pub password: String,
    pub realm: String,
    pub kdc: (String, u16),
    pub spn: String,
}

/// `REALM\user`: the form MIT and Active Directory both find (sspi sends `user@REALM` as an
/// enterprise name, which MIT does not resolve).
pub fn principal(user: &str, realm: &str) -> String {
    let account = user
        .rsplit_once('\\')
        .map(|(_, u)| u)
        .or_else(|| user.split_once('@').map(|(u, _)| u))
        .unwrap_or(user);
    format!("{}\\{account}", realm.to_ascii_uppercase())
}

/// One client context, from the first token to the session's sealing.
pub struct Handshake {
    context: Negotiate,
    credentials: <Negotiate as SspiImpl>::CredentialsHandle,
    names: Names,
    /// The last error the KDC answered with (RFC 4120 error code), for the message.
    kdc_error: Option<i64>,
}

/// What messages name.
struct Names {
    user: String,
    realm: String,
    kdc: (String, u16),
    spn: String,
}

/// A failed Kerberos step: its kind, the message, and whether Negotiate may try NTLM instead
/// (as Windows does when there is no KDC or no such service, never after a wrong password).
#[derive(Debug)]
pub struct KerberosError {
    pub error: TransportError,
    pub ntlm_may_follow: bool,
}

fn refused(kind: ErrorKind, message: String, ntlm_may_follow: bool) -> KerberosError {
    KerberosError {
        error: TransportError::new(kind, message),
        ntlm_may_follow,
    }
}

impl Handshake {
    pub fn new(login: &Login) -> Result<Handshake, KerberosError> {
        let user = principal(&login.user, &login.realm);
        let kdc_url = format!("tcp://{}", endpoint(&login.kdc.0, login.kdc.1));
        let computer = "ecfleet".to_string();
        let config = NegotiateConfig::new(
            Box::new(KerberosConfig::new_with_kdc_url(&kdc_url, computer.clone())),
            Some("kerberos,!ntlm".into()),
            computer,
        );
        let setup = |e: sspi::Error| {
            refused(
                ErrorKind::Auth,
                format!("Kerberos could not start: {e}"),
                false,
            )
        };
        let mut context = Negotiate::new_client(config).map_err(setup)?;
        let username = Username::parse(&user).map_err(|e| {
            refused(
                ErrorKind::Credential,
                format!("`{user}` is not a user name Kerberos can use: {e}"),
                false,
            )
        })?;
        let identity = Credentials::AuthIdentity(AuthIdentity {
            username,
            password: login.password.clone().into(),
        });
        let acquired = AcquireCredentialsHandle::<'_, _, _, WithoutCredentialUse>::new()
            .with_auth_data(&identity)
            .with_credential_use(CredentialUse::Outbound)
            .execute(&mut context)
            .map_err(setup)?;
        Ok(Handshake {
            context,
            credentials: acquired.credentials_handle,
            names: Names {
                user,
                realm: login.realm.clone(),
                kdc: login.kdc.clone(),
                spn: login.spn.clone(),
            },
            kdc_error: None,
        })
    }

    /// One step: the token the host sent (`None` at first), the KDC asked as needed through
    /// `dialer` before `deadline`. Returns the token to send (empty when there is none) and
    /// whether the context is complete.
    pub async fn step(
        &mut self,
        input: Option<&[u8]>,
        dialer: &Dialer,
        deadline: Instant,
    ) -> Result<(Vec<u8>, bool), KerberosError> {
        let mut input = [SecurityBuffer::new(
            input.map(<[u8]>::to_vec).unwrap_or_default(),
            BufferType::Token,
        )];
        let mut output = [SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let spn = self.names.spn.clone();
        let mut builder = self
            .context
            .initialize_security_context()
            .with_credentials_handle(&mut self.credentials)
            .with_context_requirements(
                ClientRequestFlags::MUTUAL_AUTH
                    | ClientRequestFlags::INTEGRITY
                    | ClientRequestFlags::CONFIDENTIALITY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&spn)
            .with_input(&mut input)
            .with_output(&mut output);
        let mut kdc_error = None;
        let mut kdc_failure: Option<KerberosError> = None;
        let outcome = {
            let mut generator = match self.context.initialize_security_context_impl(&mut builder) {
                Ok(g) => g,
                Err(e) => return Err(explain(&self.names, e, None)),
            };
            let mut state = generator.start();
            loop {
                match state {
                    GeneratorState::Suspended(request) => {
                        let reply = ask_kdc(&request, dialer, deadline, &self.names.kdc).await;
                        let answer = match reply {
                            Ok(bytes) => {
                                if let Some(code) = krb_error_code(&bytes) {
                                    kdc_error = Some(code);
                                }
                                Ok(bytes)
                            }
                            Err(e) => {
                                let message = e.error.message.clone();
                                kdc_failure = Some(e);
                                Err(sspi::Error::new(
                                    sspi::ErrorKind::NoAuthenticatingAuthority,
                                    message,
                                ))
                            }
                        };
                        state = generator.resume(answer);
                    }
                    GeneratorState::Completed(result) => break result,
                }
            }
        };
        if let Some(code) = kdc_error {
            self.kdc_error = Some(code);
        }
        let result = match outcome {
            Ok(r) => r,
            Err(e) => {
                if let Some(failure) = kdc_failure {
                    return Err(failure);
                }
                return Err(explain(&self.names, e, self.kdc_error));
            }
        };
        let token = std::mem::take(&mut output[0].buffer);
        Ok((token, result.status == SecurityStatus::Ok))
    }

    /// The session's message security, once the context is complete.
    pub fn into_sealing(self) -> Sealing {
        Sealing {
            context: self.context,
        }
    }
}

/// What a failed step means, from the KDC's error code when it sent one.
fn explain(names: &Names, e: sspi::Error, kdc_error: Option<i64>) -> KerberosError {
    let (user, realm, spn) = (&names.user, &names.realm, &names.spn);
    let kdc = endpoint(&names.kdc.0, names.kdc.1);
    match kdc_error {
        Some(6) => refused(
            ErrorKind::Auth,
            format!(
                "the KDC {kdc} does not know the user {user} (KDC_ERR_C_PRINCIPAL_UNKNOWN): check the user and the realm {realm}"
            ),
            false,
        ),
        Some(7) => refused(
            ErrorKind::Auth,
            format!(
                "the KDC {kdc} knows no service principal {spn} (KDC_ERR_S_PRINCIPAL_UNKNOWN): the SPN is wrong; give the host's name as registered in the domain (setspn -L <computer>), or set spn = \"HTTP/<fqdn>\" on the host"
            ),
            true,
        ),
        Some(24) => refused(
            ErrorKind::Auth,
            format!(
                "the KDC {kdc} refused the password of {user} (KDC_ERR_PREAUTH_FAILED): check the password reference"
            ),
            false,
        ),
        Some(18) => refused(
            ErrorKind::Auth,
            format!("the account {user} is disabled or locked out (KDC_ERR_CLIENT_REVOKED)"),
            false,
        ),
        Some(23) => refused(
            ErrorKind::Auth,
            format!(
                "the password of {user} has expired (KDC_ERR_KEY_EXPIRED): change it in the domain"
            ),
            false,
        ),
        Some(37) => refused(
            ErrorKind::Auth,
            format!(
                "this machine's clock and the KDC {kdc}'s differ by more than the realm allows (KRB_AP_ERR_SKEW, 5 minutes by default): synchronise this machine's clock with the domain (w32tm /resync, chrony)"
            ),
            false,
        ),
        Some(code) => refused(
            ErrorKind::Auth,
            format!("the KDC {kdc} refused (Kerberos error {code}): {e}"),
            false,
        ),
        None => refused(
            ErrorKind::Auth,
            format!("Kerberos for {spn} failed: {e}"),
            false,
        ),
    }
}

/// One KDC request over TCP (RFC 4120 §7.2.2: a 4-byte length, then the message), sent the
/// way the host is reached; the reply keeps its length prefix, as sspi expects.
async fn ask_kdc(
    request: &NetworkRequest,
    dialer: &Dialer,
    deadline: Instant,
    kdc: &(String, u16),
) -> Result<Vec<u8>, KerberosError> {
    let shown = endpoint(&kdc.0, kdc.1);
    let no_answer = |why: String| {
        refused(
            ErrorKind::Unreachable,
            format!(
                "no answer from the KDC {shown}: {why}; check kdc in the inventory (or the realm's kdc in krb5.conf) and that this machine can reach it on TCP"
            ),
            true,
        )
    };
    if request.protocol != sspi::NetworkProtocol::Tcp {
        return Err(no_answer(format!(
            "asked over {:?}, ecfleet speaks TCP only",
            request.protocol
        )));
    }
    let limit = deadline.saturating_duration_since(Instant::now());
    let exchange = async {
        let dialed = dialer
            .dial(&kdc.0, kdc.1, deadline)
            .await
            .map_err(|e| no_answer(e.message))?;
        let mut stream = dialed.stream;
        stream
            .write_all(&request.data)
            .await
            .map_err(|e| no_answer(e.to_string()))?;
        let mut len = [0u8; 4];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| no_answer(format!("the connection closed ({e})")))?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_KDC_REPLY {
            return Err(refused(
                ErrorKind::Protocol,
                format!("the KDC {shown} announced a reply of {n} bytes, more than ecfleet reads"),
                false,
            ));
        }
        let mut reply = vec![0u8; 4 + n];
        reply[..4].copy_from_slice(&len);
        stream
            .read_exact(&mut reply[4..])
            .await
            .map_err(|e| no_answer(format!("the reply was cut ({e})")))?;
        Ok(reply)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(r) => r,
        Err(_) => Err(no_answer(format!(
            "nothing within {} s",
            limit.as_millis().div_ceil(1000)
        ))),
    }
}

/// The error code of a KRB-ERROR (`[APPLICATION 30]`, RFC 4120 §5.9.1) in a TCP-framed KDC
/// reply, if that is what it is.
fn krb_error_code(framed: &[u8]) -> Option<i64> {
    let message = framed.get(4..)?;
    let (tag, body, _) = der(message)?;
    if tag != 0x7e {
        return None;
    }
    let (seq, fields, _) = der(body)?;
    if seq != 0x30 {
        return None;
    }
    let mut rest = fields;
    while !rest.is_empty() {
        let (tag, value, next) = der(rest)?;
        if tag == 0xa6 {
            // error-code [6] Int32
            let (int_tag, digits, _) = der(value)?;
            if int_tag != 0x02 || digits.is_empty() || digits.len() > 4 {
                return None;
            }
            let mut n: i64 = if digits[0] & 0x80 != 0 { -1 } else { 0 };
            for b in digits {
                n = (n << 8) | i64::from(*b);
            }
            return Some(n);
        }
        rest = next;
    }
    None
}

/// One DER element: tag, contents, what follows.
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..count {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + count)
    };
    let end = head.checked_add(len)?;
    Some((tag, b.get(head..end)?, b.get(end..)?))
}

/// A completed Kerberos context's message security.
pub struct Sealing {
    context: Negotiate,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("kerberos::Sealing { .. }")
    }
}

impl Sealing {
    /// Wraps `message`: (the wrap token's header, the encrypted message).
    pub fn seal(&mut self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut token = vec![0u8; 1024];
        let mut data = message.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut token),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.context
            .encrypt_message(EncryptionFlags::empty(), &mut buffers)
            .map_err(|e| format!("Kerberos could not encrypt a message: {e}"))?;
        let header = buffers[0].data().to_vec();
        let sealed = buffers[1].data().to_vec();
        Ok((header, sealed))
    }

    /// Unwraps a reply and checks its integrity.
    pub fn unseal(&mut self, header: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
        let mut token = header.to_vec();
        let mut data = sealed.to_vec();
        let mut buffers = [
            SecurityBufferRef::token_buf(&mut token),
            SecurityBufferRef::data_buf(&mut data),
        ];
        self.context
            .decrypt_message(&mut buffers)
            .map_err(|e| format!("a reply failed Kerberos' integrity check: {e}"))?;
        Ok(buffers[1].data().to_vec())
    }
}

/// How long a KDC exchange may take at most when the host's deadline is longer.
pub const KDC_LIMIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_become_realm_backslash_user() {
        assert_eq!(principal("fleet", "contoso.local"), "CONTOSO.LOCAL\\fleet");
        assert_eq!(
            principal("CONTOSO\\fleet", "CONTOSO.LOCAL"),
            "CONTOSO.LOCAL\\fleet"
        );
        assert_eq!(
            principal("fleet@contoso.local", "CONTOSO.LOCAL"),
            "CONTOSO.LOCAL\\fleet"
        );
    }

    #[test]
    fn a_kdc_error_code_is_read_from_its_reply() {
        // KRB-ERROR { pvno 5, msg-type 30, stime, susec, error-code 24 }, TCP-framed.
        let fields: Vec<u8> = [
            &[0xa0, 0x03, 0x02, 0x01, 0x05][..],
            &[0xa1, 0x03, 0x02, 0x01, 0x1e],
            &[0xa4, 0x11, 0x18, 0x0f],
            b"20261207120000Z",
            &[0xa5, 0x03, 0x02, 0x01, 0x00],
            &[0xa6, 0x03, 0x02, 0x01, 0x18],
        ]
        .concat();
        let mut seq = vec![0x30, fields.len() as u8];
        seq.extend(fields);
        let mut app = vec![0x7e, seq.len() as u8];
        app.extend(seq);
        let mut framed = (app.len() as u32).to_be_bytes().to_vec();
        framed.extend(app);
        assert_eq!(krb_error_code(&framed), Some(24));
        assert_eq!(krb_error_code(&[0, 0, 0, 2, 0x6b, 0x00]), None, "an AS-REP");
        assert_eq!(krb_error_code(&[0, 0, 0, 9, 0x7e, 0x7f]), None, "cut short");
    }
}
