//! Kerberos for WinRM, through the Negotiate (SPNEGO) scheme as Windows' own client does it:
//! the ticket exchange with the KDC (sspi's Kerberos; each KDC request comes back to us and
//! is sent the way the host is reached, jump hosts included), the SPNEGO tokens on the HTTP
//! connection with mutual authentication, and then the session's message encryption (RFC 4121
//! wrap tokens, MS-WSMV's `HTTP-SPNEGO-session-encrypted`). A KDC's refusal is read from its
//! KRB-ERROR, so that a failure says which it was (RFC 4120 §7.5.9) and what to do.

use sspi::builders::{AcquireCredentialsHandle, WithoutCredentialUse};
use sspi::generator::GeneratorState;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, Credentials, DataRepresentation,
    EncryptionFlags, KerberosConfig, KeytabIdentity, Negotiate, NegotiateConfig, NetworkRequest,
    SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl, Username,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::ErrorKind;
use crate::transport::TransportError;
use crate::transport::dial::{Dialer, endpoint};

/// Most a KDC reply may be (a ticket with a large PAC is tens of KiB).
const MAX_KDC_REPLY: usize = 1 << 20;

/// Who logs in where: the account (any of `user`, `REALM\user`, `user@REALM`), its password
/// or keytab key, the realm and its KDC, and the host's service principal (`HTTP/<fqdn>`).
pub struct Login {
    pub user: String,
    pub secret: LoginSecret,
    pub realm: String,
    pub kdc: (String, u16),
    pub spn: String,
}

/// What proves the account: a password, or its key from a keytab file.
pub enum LoginSecret {
    Password(String),
    Keytab {
        entry: Box<super::keytab::KeytabEntry>,
        /// The file, for messages.
        file: std::path::PathBuf,
    },
}

/// `REALM\user`: the form MIT and Active Directory both find (sspi sends `user@REALM` as an
/// enterprise name, which MIT does not resolve).
pub fn principal(user: &str, realm: &str) -> String {
    format!("{}\\{}", realm.to_ascii_uppercase(), account(user))
}

/// The account name alone, from any of `user`, `DOMAIN\user`, `user@REALM`.
pub fn account(user: &str) -> &str {
    user.rsplit_once('\\')
        .map(|(_, u)| u)
        .or_else(|| user.split_once('@').map(|(u, _)| u))
        .unwrap_or(user)
}

/// One client context, from the first token to the session's sealing.
pub struct Handshake {
    context: Negotiate,
    credentials: <Negotiate as SspiImpl>::CredentialsHandle,
    names: Names,
    /// The last error the KDC answered with (RFC 4120 error code), for the message.
    kdc_error: Option<i64>,
    /// Which key this login's password makes, and whether it came from the run's cache.
    key_id: KeyId,
    from_cache: bool,
    /// The KDC's word on how keys are made (ETYPE-INFO2 in its PREAUTH_REQUIRED answer).
    salting: Option<Salting>,
    /// The password, when the login has one (a keytab's key needs no deriving).
    password: Option<String>,
}

/// A password's key is the same for every host of a run: derived once (PBKDF2, 4096 rounds of
/// HMAC-SHA1, the bulk of Kerberos' cost per host) after a login proved it, and given to sspi
/// as a pre-derived key (`KeytabIdentity`) for the hosts after.
#[derive(Clone, PartialEq, Eq, Hash)]
struct KeyId {
    principal: String,
    kdc: (String, u16),
    /// SHA-256 of the password: another password never gets this key.
    password: String,
}

#[derive(Clone)]
struct DerivedKey {
    key: Vec<u8>,
    enctype: picky_krb::crypto::CipherSuite,
}

fn derived_keys() -> &'static std::sync::Mutex<std::collections::HashMap<KeyId, DerivedKey>> {
    static KEYS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<KeyId, DerivedKey>>,
    > = std::sync::OnceLock::new();
    KEYS.get_or_init(Default::default)
}

/// An AES encryption type and its salt, as the KDC says them (default iterations only).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Salting {
    etype: i64,
    salt: Vec<u8>,
}

/// What messages name.
struct Names {
    user: String,
    realm: String,
    kdc: (String, u16),
    spn: String,
    /// The keytab the key came from, when it did.
    keytab: Option<std::path::PathBuf>,
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
    /// A login for `login`. It carries no TLS channel binding: sspi 0.23 writes the
    /// AD-AUTH-DATA-AP-OPTIONS that goes with one as 2 bytes where MIT and Heimdal read 4, and
    /// MIT refuses the whole AP-REQ (measured; docs/winrm.md).
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
        let key_id = KeyId {
            principal: user.clone(),
            kdc: login.kdc.clone(),
            password: match &login.secret {
                LoginSecret::Password(p) => crate::digest::sha256_hex(p.as_bytes()),
                LoginSecret::Keytab { .. } => String::new(),
            },
        };
        let (identity, from_cache, password) = match &login.secret {
            LoginSecret::Keytab { entry, .. } => {
                let enctype = match entry.enctype {
                    17 => picky_krb::crypto::CipherSuite::Aes128CtsHmacSha196,
                    _ => picky_krb::crypto::CipherSuite::Aes256CtsHmacSha196,
                };
                let identity = Credentials::Keytab(KeytabIdentity {
                    principal: username,
                    key: entry.key().to_vec().into(),
                    key_enctype: enctype,
                });
                (identity, true, None)
            }
            LoginSecret::Password(password) => {
                let cached = derived_keys()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key_id)
                    .cloned();
                let from_cache = cached.is_some();
                let identity = match cached {
                    Some(derived) => Credentials::Keytab(KeytabIdentity {
                        principal: username,
                        key: derived.key.into(),
                        key_enctype: derived.enctype,
                    }),
                    None => Credentials::AuthIdentity(AuthIdentity {
                        username,
                        password: password.clone().into(),
                    }),
                };
                (identity, from_cache, Some(password.clone()))
            }
        };
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
                keytab: match &login.secret {
                    LoginSecret::Keytab { file, .. } => Some(file.clone()),
                    LoginSecret::Password(_) => None,
                },
            },
            kdc_error: None,
            key_id,
            from_cache,
            salting: None,
            password,
        })
    }

    /// After a completed login: the password's key for the rest of the run, when the KDC said
    /// how to make it (AES, its salt, the default iterations).
    fn remember_key(&self) {
        use picky_krb::crypto::CipherSuite;
        use picky_krb::crypto::aes::{AesSize, derive_key_from_password};
        if self.from_cache {
            return;
        }
        let (Some(salting), Some(password)) = (&self.salting, &self.password) else {
            return;
        };
        let (size, enctype) = match salting.etype {
            18 => (AesSize::Aes256, CipherSuite::Aes256CtsHmacSha196),
            17 => (AesSize::Aes128, CipherSuite::Aes128CtsHmacSha196),
            _ => return,
        };
        if let Ok(key) = derive_key_from_password(password, &salting.salt, &size) {
            derived_keys()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.key_id.clone(), DerivedKey { key, enctype });
        }
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
        let mut salting = None;
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
                                    if code == 25 && salting.is_none() {
                                        salting = etype_info2(&bytes);
                                    }
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
        if salting.is_some() {
            self.salting = salting;
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
        self.remember_key();
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
            match &names.keytab {
                None => format!(
                    "the KDC {kdc} refused the password of {user} (KDC_ERR_PREAUTH_FAILED): check the password reference"
                ),
                Some(file) => format!(
                    "the KDC {kdc} refused the key of {user} from the keytab {} (KDC_ERR_PREAUTH_FAILED): the account's key changed since the keytab was written (a new password, or a newer key version); write the keytab again",
                    file.display()
                ),
            },
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
    let (tag, body, _) = der(framed.get(4..)?)?;
    if tag != 0x7e {
        return None;
    }
    let (_, fields, _) = der_seq_body(body)?;
    // error-code [6] Int32
    fields_of(fields)
        .find(|(tag, _)| *tag == 0xa6)
        .and_then(|(_, value)| integer(value))
}

/// The first AES entry of the ETYPE-INFO2 (PA-DATA 19) in a KRB-ERROR's e-data (RFC 4120
/// §5.2.7.5, §5.9.1), when it uses the default iterations (no s2kparams).
fn etype_info2(framed: &[u8]) -> Option<Salting> {
    let (tag, body, _) = der(framed.get(4..)?)?;
    if tag != 0x7e {
        return None;
    }
    let (_, fields, _) = der_seq_body(body)?;
    // e-data [12] OCTET STRING
    let e_data = fields_of(fields).find(|(tag, _)| *tag == 0xac)?.1;
    let (_, method_data, _) = der(e_data)?; // OCTET STRING
    let (_, padatas, _) = der_seq_body(method_data)?; // SEQUENCE OF PA-DATA
    let mut rest = padatas;
    while !rest.is_empty() {
        let (_, padata, next) = der_seq_body(rest)?;
        rest = next;
        let pa_fields = padata;
        let mut kind = None;
        let mut value = None;
        for (tag, content) in fields_of(pa_fields) {
            match tag {
                0xa1 => kind = integer(content),
                0xa2 => value = der(content).map(|(_, v, _)| v),
                _ => {}
            }
        }
        if kind != Some(19) {
            continue;
        }
        let (_, entries, _) = der_seq_body(value?)?;
        let mut entries_rest = entries;
        while !entries_rest.is_empty() {
            let (_, entry, next) = der_seq_body(entries_rest)?;
            entries_rest = next;
            let mut etype = None;
            let mut salt = None;
            let mut s2kparams = false;
            for (tag, content) in fields_of(entry) {
                match tag {
                    0xa0 => etype = integer(content),
                    0xa1 => salt = der(content).map(|(_, v, _)| v.to_vec()),
                    0xa2 => s2kparams = true,
                    _ => {}
                }
            }
            if let (Some(etype @ (17 | 18)), Some(salt), false) = (etype, salt, s2kparams) {
                return Some(Salting { etype, salt });
            }
        }
    }
    None
}

/// The contents of `b` when it is a SEQUENCE.
fn der_seq_body(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (tag, body, rest) = der(b)?;
    (tag == 0x30).then_some((tag, body, rest))
}

/// The elements of a constructed value's contents, in order: (tag, element contents).
fn fields_of(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, rest) = der(b)?;
        b = rest;
        Some((tag, content))
    })
}

/// An INTEGER element's value (at most four bytes).
fn integer(b: &[u8]) -> Option<i64> {
    let (tag, digits, _) = der(b)?;
    if tag != 0x02 || digits.is_empty() || digits.len() > 4 {
        return None;
    }
    let mut n: i64 = if digits[0] & 0x80 != 0 { -1 } else { 0 };
    for d in digits {
        n = (n << 8) | i64::from(*d);
    }
    Some(n)
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

    /// A DER element of `tag` holding `content`.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x81, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    #[test]
    fn the_kdcs_salt_is_read_from_its_preauth_required_answer() {
        let int = |n: u8| tlv(0x02, &[n]);
        let entry = |etype: u8, salt: &[u8]| {
            tlv(
                0x30,
                &[tlv(0xa0, &int(etype)), tlv(0xa1, &tlv(0x1b, salt))].concat(),
            )
        };
        // ETYPE-INFO2: an RC4 entry (skipped), then AES-256 with the realm-and-user salt.
        let entries = tlv(
            0x30,
            &[entry(23, b""), entry(18, b"ECFLEET.TESTfleet")].concat(),
        );
        let padata = |kind: u8, value: &[u8]| {
            tlv(
                0x30,
                &[tlv(0xa1, &int(kind)), tlv(0xa2, &tlv(0x04, value))].concat(),
            )
        };
        let method_data = tlv(0x30, &[padata(2, b""), padata(19, &entries)].concat());
        let fields = [
            tlv(0xa0, &int(5)),
            tlv(0xa1, &int(30)),
            tlv(0xa6, &int(25)),
            tlv(0xac, &tlv(0x04, &method_data)),
        ]
        .concat();
        let message = tlv(0x7e, &tlv(0x30, &fields));
        let mut framed = (message.len() as u32).to_be_bytes().to_vec();
        framed.extend(message);
        assert_eq!(krb_error_code(&framed), Some(25));
        assert_eq!(
            etype_info2(&framed),
            Some(Salting {
                etype: 18,
                salt: b"ECFLEET.TESTfleet".to_vec()
            })
        );
        assert_eq!(etype_info2(&framed[..framed.len() - 3]), None, "cut short");
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
