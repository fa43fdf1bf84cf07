//! NTLMv2 for WinRM (MS-NLMP), client side: the NEGOTIATE message, the AUTHENTICATE message
//! that answers the host's CHALLENGE (with the MIC when the host sends a timestamp, and a
//! random exported session key under KEY_EXCH), and the session's sealing: RC4 with one
//! handle per direction and an HMAC-MD5 signature with a sequence number, which is what
//! MS-WSMV message encryption wraps every envelope in. Tested on MS-NLMP's own test vectors
//! (§4.2.4) and against pyspnego's acceptor. The password is used to derive the NT hash and
//! dropped; no key material is ever printed (`Debug` shows none).

use hmac::{Hmac, KeyInit, Mac};
use md4::Md4;
use md5::{Digest, Md5};

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

pub const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
pub const REQUEST_TARGET: u32 = 0x0000_0004;
pub const NEGOTIATE_SIGN: u32 = 0x0000_0010;
pub const NEGOTIATE_SEAL: u32 = 0x0000_0020;
pub const NEGOTIATE_NTLM: u32 = 0x0000_0200;
pub const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
pub const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
pub const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
pub const NEGOTIATE_VERSION: u32 = 0x0200_0000;
pub const NEGOTIATE_128: u32 = 0x2000_0000;
pub const NEGOTIATE_KEY_EXCH: u32 = 0x4000_0000;
pub const NEGOTIATE_56: u32 = 0x8000_0000;

/// What ecfleet asks for: NTLMv2 with extended session security, signing and 128-bit sealing.
const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_SIGN
    | NEGOTIATE_SEAL
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_VERSION
    | NEGOTIATE_128
    | NEGOTIATE_KEY_EXCH
    | NEGOTIATE_56;

/// Windows 10.0, NTLM revision 15.
const VERSION: [u8; 8] = [10, 0, 0x61, 0x4a, 0, 0, 0, 15];

const AV_EOL: u16 = 0;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
const AV_CHANNEL_BINDINGS: u16 = 10;
/// MsvAvFlags: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC: u32 = 0x2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("the host's NTLM challenge is malformed: {0}")]
    BadChallenge(&'static str),
    #[error(
        "the host offers no 128-bit NTLM sealing with extended session security; WinRM message encryption needs it"
    )]
    WeakSecurity,
    #[error("an encrypted reply failed its NTLM integrity check")]
    BadSignature,
}

/// A user's NTLM identity: `DOMAIN\user`, `user@domain` or a local `user`.
pub struct Identity {
    user: String,
    domain: String,
    nt_hash: [u8; 16],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key size");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

impl Identity {
    pub fn new(account: &str, password: &str) -> Identity {
        let (domain, user) = match (account.split_once('\\'), account.split_once('@')) {
            (Some((d, u)), _) => (d.to_string(), u.to_string()),
            (None, Some((u, d))) => (d.to_string(), u.to_string()),
            _ => (String::new(), account.to_string()),
        };
        let nt_hash: [u8; 16] = Md4::digest(utf16(password)).into();
        Identity {
            user,
            domain,
            nt_hash,
        }
    }

    /// NTOWFv2 (MS-NLMP §3.3.2).
    fn ntowf_v2(&self) -> [u8; 16] {
        let who = utf16(&(self.user.to_uppercase() + &self.domain));
        hmac_md5(&self.nt_hash, &[&who])
    }
}

/// The client's NEGOTIATE message (type 1).
pub fn negotiate_message() -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0; 16]); // no domain, no workstation
    m.extend_from_slice(&VERSION);
    m
}

/// What the host's CHALLENGE (type 2) says.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: Vec<u8>,
    raw: Vec<u8>,
}

fn field(m: &[u8], at: usize) -> Result<&[u8], NtlmError> {
    let head = m.get(at..at + 8).ok_or(NtlmError::BadChallenge("short"))?;
    let len = u16::from_le_bytes([head[0], head[1]]) as usize;
    let off = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    m.get(off..off + len).ok_or(NtlmError::BadChallenge(
        "a field points outside the message",
    ))
}

impl Challenge {
    pub fn parse(m: &[u8]) -> Result<Challenge, NtlmError> {
        if m.len() < 48 || &m[..8] != SIGNATURE || m[8..12] != 2u32.to_le_bytes() {
            return Err(NtlmError::BadChallenge("not an NTLM CHALLENGE message"));
        }
        let flags = u32::from_le_bytes([m[20], m[21], m[22], m[23]]);
        let mut server_challenge = [0; 8];
        server_challenge.copy_from_slice(&m[24..32]);
        let target_info = if flags & NEGOTIATE_TARGET_INFO != 0 {
            field(m, 40)?.to_vec()
        } else {
            Vec::new()
        };
        Ok(Challenge {
            flags,
            server_challenge,
            target_info,
            raw: m.to_vec(),
        })
    }

    /// The AV pairs of the target info, in order.
    fn av_pairs(&self) -> Result<Vec<(u16, Vec<u8>)>, NtlmError> {
        let mut out = Vec::new();
        let t = &self.target_info;
        let mut at = 0;
        while at + 4 <= t.len() {
            let id = u16::from_le_bytes([t[at], t[at + 1]]);
            let len = u16::from_le_bytes([t[at + 2], t[at + 3]]) as usize;
            let value = t
                .get(at + 4..at + 4 + len)
                .ok_or(NtlmError::BadChallenge("a target info pair is cut"))?;
            if id == AV_EOL {
                break;
            }
            out.push((id, value.to_vec()));
            at += 4 + len;
        }
        Ok(out)
    }
}

/// Now as a Windows FILETIME (100 ns since 1601), as NTLM timestamps are.
pub fn filetime_now() -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (unix.as_nanos() / 100) as u64 + 116_444_736_000_000_000
}

/// The inputs a real handshake draws at random (fixed in tests).
#[derive(Debug, Clone)]
pub struct Randomness {
    pub client_challenge: [u8; 8],
    pub exported_session_key: [u8; 16],
    /// FILETIME (100 ns since 1601) when the host sends no timestamp.
    pub now: u64,
}

impl Randomness {
    pub fn fresh() -> Randomness {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        let mut client_challenge = [0; 8];
        client_challenge.copy_from_slice(&a.as_bytes()[..8]);
        Randomness {
            client_challenge,
            exported_session_key: *b.as_bytes(),
            now: filetime_now(),
        }
    }
}

/// The keys of an NTLMv2 exchange (for the tests against MS-NLMP's vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responses {
    pub lm: Vec<u8>,
    pub nt: Vec<u8>,
    pub session_base_key: [u8; 16],
    pub encrypted_session_key: Vec<u8>,
}

/// The NTLMv2 responses to `challenge` (MS-NLMP §3.3.2), with `target_info` as sent back.
fn responses(
    id: &Identity,
    challenge: &Challenge,
    target_info: &[u8],
    time: [u8; 8],
    use_lm: bool,
    r: &Randomness,
) -> Responses {
    let key = id.ntowf_v2();
    let mut temp = vec![1, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(&time);
    temp.extend_from_slice(&r.client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(&key, &[&challenge.server_challenge, &temp]);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&temp);
    let lm = if use_lm {
        let mut lm = hmac_md5(&key, &[&challenge.server_challenge, &r.client_challenge]).to_vec();
        lm.extend_from_slice(&r.client_challenge);
        lm
    } else {
        vec![0; 24]
    };
    let session_base_key = hmac_md5(&key, &[&proof]);
    let encrypted_session_key = if challenge.flags & NEGOTIATE_KEY_EXCH != 0 {
        Rc4::new(&session_base_key).process(&r.exported_session_key)
    } else {
        Vec::new()
    };
    Responses {
        lm,
        nt,
        session_base_key,
        encrypted_session_key,
    }
}

/// Answers `challenge`: the AUTHENTICATE message (type 3) and the session's sealing. Over TLS,
/// `channel_binding` is the connection's application data (`tls-server-end-point:` and the
/// certificate's hash): its MD5 goes into the answer, tying it to this TLS connection.
pub fn authenticate(
    id: &Identity,
    negotiate: &[u8],
    challenge: &Challenge,
    r: &Randomness,
    channel_binding: Option<&[u8]>,
) -> Result<(Vec<u8>, Sealing), NtlmError> {
    let flags = challenge.flags;
    let needed =
        NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_128 | NEGOTIATE_SEAL | NEGOTIATE_SIGN;
    if flags & needed != needed {
        return Err(NtlmError::WeakSecurity);
    }
    let pairs = challenge.av_pairs()?;
    let timestamp = pairs.iter().find(|(id, _)| *id == AV_TIMESTAMP);
    // With the host's timestamp: send it back, say a MIC follows, and no LMv2 response.
    let (target_info, time, mic) = match timestamp {
        Some((_, ts)) if ts.len() == 8 => {
            let mut info = Vec::new();
            let mut flagged = false;
            for (id, value) in &pairs {
                let mut value = value.clone();
                if *id == AV_FLAGS && value.len() == 4 {
                    let v = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                    value = (v | AV_FLAG_MIC).to_le_bytes().to_vec();
                    flagged = true;
                }
                push_pair(&mut info, *id, &value);
            }
            if !flagged {
                push_pair(&mut info, AV_FLAGS, &AV_FLAG_MIC.to_le_bytes());
            }
            if let Some(b) = channel_binding {
                push_pair(&mut info, AV_CHANNEL_BINDINGS, &bindings_hash(b));
            }
            push_pair(&mut info, AV_EOL, &[]);
            let mut time = [0; 8];
            time.copy_from_slice(ts);
            (info, time, true)
        }
        _ => match channel_binding {
            None => (challenge.target_info.clone(), r.now.to_le_bytes(), false),
            Some(b) => {
                let mut info = Vec::new();
                for (id, value) in &pairs {
                    push_pair(&mut info, *id, value);
                }
                push_pair(&mut info, AV_CHANNEL_BINDINGS, &bindings_hash(b));
                push_pair(&mut info, AV_EOL, &[]);
                (info, r.now.to_le_bytes(), false)
            }
        },
    };
    let resp = responses(id, challenge, &target_info, time, !mic, r);
    let exported = if flags & NEGOTIATE_KEY_EXCH != 0 {
        r.exported_session_key
    } else {
        resp.session_base_key
    };
    let mut message = authenticate_message(id, flags, &resp);
    if mic {
        let code = hmac_md5(&exported, &[negotiate, &challenge.raw, &message]);
        message[72..88].copy_from_slice(&code);
    }
    Ok((message, Sealing::new(&exported, flags)))
}

/// MD5 of a `gss_channel_bindings_struct` with no addresses and `application_data`
/// (MS-NLMP 3.1.5.1.2, MsvAvChannelBindings).
fn bindings_hash(application_data: &[u8]) -> [u8; 16] {
    // Initiator and acceptor: address type and length, all zero.
    md5(&[
        &[0u8; 16],
        &(application_data.len() as u32).to_le_bytes(),
        application_data,
    ])
}

fn push_pair(out: &mut Vec<u8>, id: u16, value: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// The AUTHENTICATE message with a zero MIC (filled in by the caller).
fn authenticate_message(id: &Identity, flags: u32, r: &Responses) -> Vec<u8> {
    const HEAD: usize = 88;
    let domain = utf16(&id.domain);
    let user = utf16(&id.user);
    let workstation: Vec<u8> = Vec::new();
    let payload: [&[u8]; 6] = [
        &domain,
        &user,
        &workstation,
        &r.lm,
        &r.nt,
        &r.encrypted_session_key,
    ];
    let mut offsets = [0u32; 6];
    let mut at = HEAD as u32;
    for (i, p) in payload.iter().enumerate() {
        offsets[i] = at;
        at += p.len() as u32;
    }
    let mut m = Vec::with_capacity(at as usize);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let field = |m: &mut Vec<u8>, i: usize| {
        let len = payload[i].len() as u16;
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&offsets[i].to_le_bytes());
    };
    // Order of the fields: LM, NT, domain, user, workstation, session key.
    for i in [3, 4, 0, 1, 2, 5] {
        field(&mut m, i);
    }
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&VERSION);
    m.extend_from_slice(&[0; 16]); // MIC
    for p in payload {
        m.extend_from_slice(p);
    }
    m
}

/// The accepting side (the lab's WinRM server): a CHALLENGE for a NEGOTIATE, then the check of
/// the AUTHENTICATE answer against the one account it knows, and the session's sealing with the
/// directions turned around. NTLMv2 only; the MIC is checked when the client says it sent one.
pub struct Acceptor {
    challenge: Vec<u8>,
    server_challenge: [u8; 8],
    negotiate: Vec<u8>,
}

fn read_field(m: &[u8], at: usize) -> Result<&[u8], NtlmError> {
    let head = m.get(at..at + 8).ok_or(NtlmError::BadChallenge("short"))?;
    let len = u16::from_le_bytes([head[0], head[1]]) as usize;
    let off = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    m.get(off..off + len).ok_or(NtlmError::BadChallenge(
        "a field points outside the message",
    ))
}

impl Acceptor {
    /// The CHALLENGE answering `negotiate`, with a fresh server challenge and a timestamp
    /// (so that clients send a MIC). `now`: FILETIME.
    pub fn new(negotiate: &[u8], server_challenge: [u8; 8], now: u64) -> Acceptor {
        let mut info = Vec::new();
        push_pair(&mut info, 2, &utf16("LAB"));
        push_pair(&mut info, 1, &utf16("ECFLEET-LAB"));
        push_pair(&mut info, AV_TIMESTAMP, &now.to_le_bytes());
        push_pair(&mut info, AV_EOL, &[]);
        let name = utf16("LAB");
        let flags = CLIENT_FLAGS;
        let mut m = Vec::new();
        m.extend_from_slice(SIGNATURE);
        m.extend_from_slice(&2u32.to_le_bytes());
        let name_at = 56u32;
        let info_at = name_at + name.len() as u32;
        m.extend_from_slice(&(name.len() as u16).to_le_bytes());
        m.extend_from_slice(&(name.len() as u16).to_le_bytes());
        m.extend_from_slice(&name_at.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&server_challenge);
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&info_at.to_le_bytes());
        m.extend_from_slice(&VERSION);
        m.extend_from_slice(&name);
        m.extend_from_slice(&info);
        Acceptor {
            challenge: m,
            server_challenge,
            negotiate: negotiate.to_vec(),
        }
    }

    pub fn challenge(&self) -> &[u8] {
        &self.challenge
    }

    /// Checks `authenticate` for the account `id` (user names compare without case; the
    /// domain is ignored, as a workgroup server ignores it for its local accounts). Returns
    /// the server's sealing.
    pub fn accept(&self, id: &Identity, authenticate: &[u8]) -> Result<Sealing, NtlmError> {
        let bad = NtlmError::BadSignature;
        if authenticate.len() < 88
            || &authenticate[..8] != SIGNATURE
            || authenticate[8..12] != 3u32.to_le_bytes()
        {
            return Err(NtlmError::BadChallenge("not an NTLM AUTHENTICATE message"));
        }
        let nt = read_field(authenticate, 20)?;
        let domain = read_field(authenticate, 28)?;
        let user = read_field(authenticate, 36)?;
        let key = read_field(authenticate, 52)?;
        let flags = u32::from_le_bytes(authenticate[60..64].try_into().expect("4 bytes"));
        let user: String = char::decode_utf16(
            user.chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])),
        )
        .map(|c| c.unwrap_or('?'))
        .collect();
        if nt.len() < 32 || !user.eq_ignore_ascii_case(&id.user) {
            return Err(bad);
        }
        let domain: String = char::decode_utf16(
            domain
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])),
        )
        .map(|c| c.unwrap_or('?'))
        .collect();
        // NTOWFv2 as the client computed it: its user name and domain as sent.
        let who = utf16(&(user.to_uppercase() + &domain));
        let response_key = hmac_md5(&id.nt_hash, &[&who]);
        let (proof, temp) = nt.split_at(16);
        if hmac_md5(&response_key, &[&self.server_challenge, temp])[..] != *proof {
            return Err(bad);
        }
        let base = hmac_md5(&response_key, &[proof]);
        let exported: [u8; 16] = if flags & NEGOTIATE_KEY_EXCH != 0 {
            Rc4::new(&base)
                .process(key)
                .try_into()
                .map_err(|_| NtlmError::BadChallenge("the session key is not 16 bytes"))?
        } else {
            base
        };
        let mic_sent = authenticate[72..88] != [0; 16];
        if mic_sent {
            let mut zeroed = authenticate.to_vec();
            zeroed[72..88].fill(0);
            let mic = hmac_md5(&exported, &[&self.negotiate, &self.challenge, &zeroed]);
            if mic[..] != authenticate[72..88] {
                return Err(bad);
            }
        }
        let mut sealing = Sealing::new(&exported, flags);
        std::mem::swap(&mut sealing.client, &mut sealing.server);
        Ok(sealing)
    }
}

/// RC4, for NTLM's sealing (one keystream per direction, kept across messages).
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    pub fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    pub fn process(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        self.apply(&mut out);
        out
    }

    /// Encrypts (or decrypts) `data` in place. Written without `swap` and iterator adapters:
    /// the tests run unoptimised builds, where those cost most of a WinRM file transfer.
    pub fn apply(&mut self, data: &mut [u8]) {
        let s = &mut self.s;
        let (mut i, mut j) = (self.i, self.j);
        for b in data.iter_mut() {
            i = i.wrapping_add(1);
            let si = s[i as usize];
            j = j.wrapping_add(si);
            let sj = s[j as usize];
            s[i as usize] = sj;
            s[j as usize] = si;
            *b ^= s[si.wrapping_add(sj) as usize];
        }
        self.i = i;
        self.j = j;
    }
}

/// One direction of a session's message security.
struct Direction {
    sign_key: [u8; 16],
    rc4: Rc4,
    seq: u32,
}

impl Direction {
    fn new(exported: &[u8; 16], sign: &[u8], seal: &[u8]) -> Direction {
        Direction {
            sign_key: md5(&[exported, sign]),
            rc4: Rc4::new(&md5(&[exported, seal])),
            seq: 0,
        }
    }

    /// The 16-byte signature of `message` (already sealed with the same handle when sealing).
    fn signature(&mut self, message: &[u8], key_exch: bool) -> [u8; 16] {
        let seq = self.seq.to_le_bytes();
        let mut checksum = hmac_md5(&self.sign_key, &[&seq, message])[..8].to_vec();
        if key_exch {
            checksum = self.rc4.process(&checksum);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut sig = [0u8; 16];
        sig[0] = 1;
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq);
        sig
    }
}

/// A session's message security (MS-NLMP §3.4): seal what the client sends, unseal and check
/// what the host answers.
pub struct Sealing {
    client: Direction,
    server: Direction,
    key_exch: bool,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealing { .. }")
    }
}

impl Sealing {
    fn new(exported: &[u8; 16], flags: u32) -> Sealing {
        Sealing {
            client: Direction::new(
                exported,
                b"session key to client-to-server signing key magic constant\0",
                b"session key to client-to-server sealing key magic constant\0",
            ),
            server: Direction::new(
                exported,
                b"session key to server-to-client signing key magic constant\0",
                b"session key to server-to-client sealing key magic constant\0",
            ),
            key_exch: flags & NEGOTIATE_KEY_EXCH != 0,
        }
    }

    /// Seals `message`: (signature, ciphertext).
    pub fn seal(&mut self, message: &[u8]) -> ([u8; 16], Vec<u8>) {
        let sealed = self.client.rc4.process(message);
        let sig = self.client.signature(message, self.key_exch);
        (sig, sealed)
    }

    /// Unseals a reply and checks its signature.
    pub fn unseal(&mut self, signature: &[u8], sealed: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let message = self.server.rc4.process(sealed);
        let expected = self.server.signature(&message, self.key_exch);
        if signature != expected {
            return Err(NtlmError::BadSignature);
        }
        Ok(message)
    }

    /// The host's side, for tests: a sealing whose directions are swapped.
    #[cfg(test)]
    fn as_server(exported: &[u8; 16], flags: u32) -> Sealing {
        let mut s = Sealing::new(exported, flags);
        std::mem::swap(&mut s.client, &mut s.server);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXLOWER
            .decode(s.replace(' ', "").as_bytes())
            .unwrap()
    }

    /// MS-NLMP §4.2.4: User / Domain / Password, server challenge 0123456789abcdef, client
    /// challenge aa…, time 0, random session key 55…, target info Domain/Server.
    fn vectors() -> (Identity, Challenge, Randomness) {
        let id = Identity::new("Domain\\User", "Password");
        let mut info = Vec::new();
        push_pair(&mut info, 2, &utf16("Domain"));
        push_pair(&mut info, 1, &utf16("Server"));
        push_pair(&mut info, AV_EOL, &[]);
        let challenge = Challenge {
            flags: 0xe28a_8233,
            server_challenge: hex("0123456789abcdef").try_into().unwrap(),
            target_info: info,
            raw: Vec::new(),
        };
        let r = Randomness {
            client_challenge: [0xaa; 8],
            exported_session_key: [0x55; 16],
            now: 0,
        };
        (id, challenge, r)
    }

    #[test]
    fn ntlmv2_matches_the_ms_nlmp_test_vectors() {
        let (id, challenge, r) = vectors();
        assert_eq!(
            id.ntowf_v2().to_vec(),
            hex("0c868a403bfd7a93a3001ef22ef02e3f")
        );
        let resp = responses(&id, &challenge, &challenge.target_info, [0; 8], true, &r);
        assert_eq!(
            resp.lm,
            hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
        );
        assert_eq!(resp.nt[..16], hex("68cd0ab851e51c96aabc927bebef6a1c")[..]);
        assert_eq!(
            resp.session_base_key.to_vec(),
            hex("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
        assert_eq!(
            resp.encrypted_session_key,
            hex("c5dad2544fc9799094ce1ce90bc9d03e")
        );
    }

    #[test]
    fn sealing_matches_the_ms_nlmp_test_vectors() {
        let mut s = Sealing::new(&[0x55; 16], 0xe28a_8233);
        let (sig, sealed) = s.seal(&utf16("Plaintext"));
        assert_eq!(sealed, hex("54e50165bf1936dc996020c1811b0f06fb5f"));
        assert_eq!(sig.to_vec(), hex("010000007fb38ec5c55d497600000000"));
    }

    #[test]
    fn what_one_side_seals_the_other_unseals_in_order_and_tampering_is_caught() {
        let key = [7u8; 16];
        let mut client = Sealing::new(&key, CLIENT_FLAGS);
        let mut server = Sealing::as_server(&key, CLIENT_FLAGS);
        for text in ["first envelope", "second", ""] {
            let (sig, sealed) = client.seal(text.as_bytes());
            assert_eq!(server.unseal(&sig, &sealed).unwrap(), text.as_bytes());
        }
        let (sig, mut sealed) = server.seal(b"reply");
        sealed[0] ^= 1;
        assert_eq!(client.unseal(&sig, &sealed), Err(NtlmError::BadSignature));
    }

    #[test]
    fn rc4_matches_a_known_vector() {
        // RFC 6229's first test: key 0102030405, keystream 0..16.
        let stream = Rc4::new(&hex("0102030405")).process(&[0; 16]);
        assert_eq!(stream, hex("b2396305f03dc027ccc3524a0a1118a8"));
    }

    #[test]
    fn a_weak_or_malformed_challenge_is_refused() {
        let (id, mut challenge, r) = vectors();
        challenge.flags &= !NEGOTIATE_128;
        assert_eq!(
            authenticate(&id, &negotiate_message(), &challenge, &r, None).unwrap_err(),
            NtlmError::WeakSecurity
        );
        for bad in [&b"NTLMSSP\0"[..], b"", &[0u8; 64]] {
            assert!(Challenge::parse(bad).is_err());
        }
        let mut cut = vec![0u8; 48];
        cut[..8].copy_from_slice(SIGNATURE);
        cut[8] = 2;
        cut[20..24].copy_from_slice(&NEGOTIATE_TARGET_INFO.to_le_bytes());
        cut[40..42].copy_from_slice(&500u16.to_le_bytes());
        cut[44..48].copy_from_slice(&40u32.to_le_bytes());
        assert!(Challenge::parse(&cut).is_err());
    }

    #[test]
    fn the_acceptor_takes_the_right_password_only_and_both_sides_seal_alike() {
        let client_id = Identity::new("LAB\\fleet", "S3cret!pw");
        let server_id = Identity::new("fleet", "S3cret!pw");
        let negotiate = negotiate_message();
        let acceptor = Acceptor::new(&negotiate, [9; 8], 133_000_000_000_000_000);
        let challenge = Challenge::parse(acceptor.challenge()).unwrap();
        let (answer, mut client) = authenticate(
            &client_id,
            &negotiate,
            &challenge,
            &Randomness::fresh(),
            None,
        )
        .unwrap();
        let mut server = acceptor.accept(&server_id, &answer).unwrap();
        let (sig, sealed) = client.seal(b"<s:Envelope/>");
        assert_eq!(server.unseal(&sig, &sealed).unwrap(), b"<s:Envelope/>");
        let (sig, sealed) = server.seal(b"reply");
        assert_eq!(client.unseal(&sig, &sealed).unwrap(), b"reply");
        // A wrong password, a changed MIC.
        let wrong = Identity::new("fleet", "guess");
        assert!(acceptor.accept(&wrong, &answer).is_err());
        let mut tampered = answer.clone();
        tampered[80] ^= 1;
        assert!(acceptor.accept(&server_id, &tampered).is_err());
    }

    #[test]
    fn no_secret_in_debug_output() {
        let id = Identity::new("CONTOSO\\svc-ecfleet", "S3cret!pw");
        let shown = format!("{id:?}");
        assert!(
            !shown.contains("S3cret") && !shown.contains("nt_hash"),
            "{shown}"
        );
    }
}
