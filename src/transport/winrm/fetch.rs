//! The host's side of a host pull ([`super::pull`]): one command that downloads an offered file
//! from the controller, checking the controller's certificate against the pin in the command,
//! within a deadline. Windows: PowerShell with a small C# class (`HttpWebRequest`, .NET 4.5+,
//! so Server 2012 R2 too) — the certificate's SHA-256 pinned, no proxy. A lab host (POSIX
//! shell): curl with the certificate's public key pinned. Exit codes: 0 done, 3 the received
//! content's SHA-256 is wrong, 20 the download failed (the host cannot reach the controller, no
//! client, refused pin): the caller falls back to stdin.

use super::pull::Offer;

/// The download failed: fall back.
pub const EXIT_FETCH_FAILED: u32 = 20;
/// The received content is not the offered one.
pub const EXIT_WRONG_CONTENT: u32 = 3;

/// What the command does with the download.
pub enum Target<'a> {
    /// The whole file to `<path>.ecfleet-partial`, SHA-256 checked, renamed onto `path`.
    Whole { sha256: &'a str, mode: u32 },
    /// The part `path` lacks, appended (a longer file is started again); prints the size it
    /// started from. No check and no rename: the caller's reader verifies.
    Rest { total: u64 },
}

/// The POSIX shell command; `path` is already quoted for the shell.
pub fn posix(offer: &Offer, path: &str, target: &Target<'_>, seconds: u64) -> String {
    let curl = format!(
        "command -v curl >/dev/null || {{ echo 'no curl on the host' >&2; exit {fail}; }}; \
         curl -sS --fail --connect-timeout 5 --max-time {seconds} -k --pinnedpubkey '{pin}'",
        fail = EXIT_FETCH_FAILED,
        pin = offer.pinned_public_key(),
    );
    let url = offer.url();
    match target {
        Target::Whole { sha256, mode } => format!(
            "p={path}; t=\"$p.ecfleet-partial\"; mkdir -p \"$(dirname \"$p\")\" || exit 1; {curl} -o \"$t\" '{url}' \
             || {{ rm -f \"$t\"; exit {fail}; }}; \
             h=$(sha256sum \"$t\" | cut -d ' ' -f 1); \
             if [ \"$h\" != {sha256} ]; then rm -f \"$t\"; echo \"received SHA-256 $h\" >&2; exit {wrong}; fi; \
             chmod {mode:o} \"$t\" && mv -f \"$t\" \"$p\"",
            fail = EXIT_FETCH_FAILED,
            wrong = EXIT_WRONG_CONTENT,
        ),
        Target::Rest { total } => format!(
            "p={path}; mkdir -p \"$(dirname \"$p\")\" || exit 1; s=0; if [ -f \"$p\" ]; then s=$(wc -c < \"$p\"); fi; \
             if [ \"$s\" -gt {total} ]; then rm -f \"$p\"; s=0; fi; echo \"$s\"; \
             if [ \"$s\" -eq {total} ]; then exit 0; fi; \
             {curl} -C - -o \"$p\" '{url}' || exit {fail}",
            fail = EXIT_FETCH_FAILED,
        ),
    }
}

/// The C# downloader: `Fetch(url, pin, path, resume, seconds)` returns the size it resumed
/// from; `Sha256(path)` hashes a file. No single quotes in it (it sits in a PowerShell
/// single-quoted string).
const DOWNLOADER: &str = r#"using System;using System.IO;using System.Net;using System.Security.Cryptography;
public static class EcfleetPull{
public static string Hex(byte[] b){return BitConverter.ToString(b).Replace("-","").ToLowerInvariant();}
public static long Fetch(string url,string pin,string path,bool resume,int seconds){
ServicePointManager.SecurityProtocol=SecurityProtocolType.Tls12;
long from=0;if(resume&&File.Exists(path)){from=new FileInfo(path).Length;}
var r=(HttpWebRequest)WebRequest.Create(url);r.Timeout=seconds*1000;r.ReadWriteTimeout=60000;r.Proxy=null;
r.ServerCertificateValidationCallback=(s,c,ch,e)=>{using(var h=SHA256.Create()){return Hex(h.ComputeHash(c.GetRawCertData()))==pin;}};
if(from>0){r.AddRange(from);}
using(var w=(HttpWebResponse)r.GetResponse())using(var i=w.GetResponseStream())using(var o=new FileStream(path,from>0?FileMode.Append:FileMode.Create)){i.CopyTo(o,1048576);}
return from;}
public static string Sha256(string path){using(var h=SHA256.Create())using(var f=File.OpenRead(path)){return Hex(h.ComputeHash(f));}}}"#;

/// The PowerShell script (to be run with `-EncodedCommand`); `path` is already quoted for
/// PowerShell.
pub fn windows(offer: &Offer, path: &str, target: &Target<'_>, seconds: u64) -> String {
    let head = format!(
        "{}Add-Type -TypeDefinition '{DOWNLOADER}'; ",
        super::connection::ps_writing(path)
    );
    let (url, pin) = (offer.url(), offer.cert_sha256());
    let fetch = |file: &str, resume: bool, cleanup: &str| {
        format!(
            "try {{ $from=[EcfleetPull]::Fetch('{url}','{pin}',{file},${resume},{seconds}) }} \
             catch {{ [Console]::Error.WriteLine($_.Exception.Message); {cleanup}exit {EXIT_FETCH_FAILED} }}; "
        )
    };
    match target {
        Target::Whole { sha256, .. } => format!(
            "{head}$t=$p+'.ecfleet-partial'; {fetch}\
             $s=[EcfleetPull]::Sha256($t); \
             if($s -ne '{sha256}'){{ Remove-Item -LiteralPath $t; [Console]::Error.WriteLine(\"received SHA-256 $s\"); exit {EXIT_WRONG_CONTENT} }}; \
             Move-Item -Force -LiteralPath $t -Destination $p",
            fetch = fetch(
                "$t",
                false,
                "if(Test-Path -LiteralPath $t){ Remove-Item -LiteralPath $t }; "
            ),
        ),
        Target::Rest { total } => format!(
            "{head}$s=0; if(Test-Path -LiteralPath $p){{ $s=(Get-Item -Force -LiteralPath $p).Length }}; \
             if($s -gt {total}){{ Remove-Item -LiteralPath $p; $s=0 }}; [Console]::Out.WriteLine($s); \
             if($s -eq {total}){{ exit 0 }}; {fetch}exit 0",
            fetch = fetch("$p", true, ""),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_windows_fetcher_fits_cmd_s_line_and_pins_the_certificate() {
        let localhost = "127.0.0.1".parse().unwrap();
        let offer = super::super::pull::offer(localhost, localhost, vec![1u8; 10].into())
            .await
            .unwrap();
        let path = "'C:\\ProgramData\\ecfleet\\staged\\0123456789abcdef\\AzureADConnect.msi'";
        for target in [
            Target::Whole {
                sha256: &"a".repeat(64),
                mode: 0o644,
            },
            Target::Rest { total: 1 << 30 },
        ] {
            let script = windows(&offer, path, &target, 1800);
            assert!(!DOWNLOADER.contains('\''));
            assert!(script.contains(offer.cert_sha256()) && script.contains(&offer.url()));
            let utf16 = script.encode_utf16().count() * 2;
            // -EncodedCommand's base64 of the UTF-16 script, plus the fixed flags.
            let line = utf16.div_ceil(3) * 4 + 100;
            assert!(
                line < super::super::envelope::CMD_LINE_LIMIT,
                "{line} characters"
            );
        }
    }
}
