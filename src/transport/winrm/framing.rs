//! MS-WSMV message encryption's framing (§2.2.9.1): an envelope sealed by the session's
//! security context travels as `multipart/encrypted` — a part saying the original type and
//! length, then `application/octet-stream` with a 4-byte little-endian signature length, the
//! signature and the sealed bytes. Replies come back the same way; their stated length is
//! checked after unsealing.

/// The request's Content-Type.
pub const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

const BOUNDARY: &[u8] = b"--Encrypted Boundary";
const OCTETS: &[u8] = b"\tContent-Type: application/octet-stream\r\n";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an encrypted WinRM message is malformed: {0}")]
pub struct FramingError(pub &'static str);

/// The body of an encrypted request holding `signature` and `sealed`, the sealed form of
/// `plain_len` bytes of SOAP.
pub fn frame(plain_len: usize, signature: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(sealed.len() + signature.len() + 256);
    b.extend_from_slice(BOUNDARY);
    b.extend_from_slice(b"\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n");
    b.extend_from_slice(
        format!(
            "\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={plain_len}\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(BOUNDARY);
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(OCTETS);
    b.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    b.extend_from_slice(signature);
    b.extend_from_slice(sealed);
    b.extend_from_slice(BOUNDARY);
    b.extend_from_slice(b"--\r\n");
    b
}

/// What an encrypted message holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    pub length: usize,
    pub signature: &'a [u8],
    pub sealed: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Reads an encrypted message's parts.
pub fn unframe(body: &[u8]) -> Result<Framed<'_>, FramingError> {
    let first = find(body, BOUNDARY, 0).ok_or(FramingError("no boundary"))?;
    let length_at = find(body, b"Length=", first).ok_or(FramingError("no Length"))? + 7;
    let digits = body[length_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let length: usize = std::str::from_utf8(&body[length_at..length_at + digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(FramingError("a Length that is not a number"))?;
    let data =
        find(body, OCTETS, length_at).ok_or(FramingError("no octet-stream part"))? + OCTETS.len();
    let head = body
        .get(data..data + 4)
        .ok_or(FramingError("the signature length is cut"))?;
    let sig_len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let sig_end = data + 4 + sig_len;
    let end = body
        .len()
        .checked_sub(BOUNDARY.len() + 4)
        .filter(|e| *e >= sig_end && &body[*e..*e + BOUNDARY.len()] == BOUNDARY)
        .ok_or(FramingError("no closing boundary after the sealed data"))?;
    Ok(Framed {
        length,
        signature: &body[data + 4..sig_end],
        sealed: &body[sig_end..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_framing_has_windows_layout_and_reads_back() {
        let body = frame(9, &[1; 16], b"sealed\r\n--bytes");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=9\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n\x10\0\0\0"
        ), "{text}");
        assert!(text.ends_with("--Encrypted Boundary--\r\n"));
        let f = unframe(&body).unwrap();
        assert_eq!(
            (f.length, f.signature, f.sealed),
            (9, &[1u8; 16][..], &b"sealed\r\n--bytes"[..])
        );
    }

    #[test]
    fn cut_or_lying_frames_are_errors() {
        let body = frame(9, &[1; 16], b"sealed");
        for n in [0, 10, 60, body.len() - 3] {
            assert!(unframe(&body[..n]).is_err(), "cut at {n}");
        }
        let mut long_sig = body.clone();
        let at = find(&long_sig, OCTETS, 0).unwrap() + OCTETS.len();
        long_sig[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(unframe(&long_sig).is_err());
    }
}
