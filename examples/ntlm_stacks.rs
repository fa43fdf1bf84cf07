//! Benchmark (not a test; run by `bench/ntlm.sh`): ecfleet's own NTLM against the `sspi` crate's,
//! the question issue 18 asks before moving NTLM onto sspi. Both clients log in to the same
//! acceptor (ecfleet's `ntlm::Acceptor`, the one the lab serves and pyspnego cross-checks) and
//! then seal WinRM-sized envelopes that the acceptor unseals, so each client's output is
//! checked while it is timed. Only the client's own work is timed: the NT hash, NEGOTIATE,
//! AUTHENTICATE and sealing. Prints one line per stack and the ratio.
//!
//! Usage: ntlm_stacks [HANDSHAKES] [ENVELOPES_PER_HANDSHAKE] [ENVELOPE_BYTES]

use std::time::{Duration, Instant};

use ecfleet::transport::winrm::ntlm::{
    Acceptor, Challenge, Identity, Randomness, authenticate, filetime_now, negotiate_message,
};
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, Sspi, SspiImpl, Username,
};

const USER: &str = "fleet";
const PASSWORD: &str = "Correct-Horse-7";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let handshakes = args.first().copied().unwrap_or(2000);
    let envelopes = args.get(1).copied().unwrap_or(8);
    let size = args.get(2).copied().unwrap_or(16 << 10);
    let envelope: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let server_id = Identity::new(USER, PASSWORD);

    // Alternating rounds, so that neither stack gets the warmer machine.
    let (mut own, mut theirs) = (Duration::ZERO, Duration::ZERO);
    for round in 0..4 {
        let n = handshakes / 4;
        if round % 2 == 0 {
            own += own_stack(n, envelopes, &envelope, &server_id);
            theirs += sspi_stack(n, envelopes, &envelope, &server_id);
        } else {
            theirs += sspi_stack(n, envelopes, &envelope, &server_id);
            own += own_stack(n, envelopes, &envelope, &server_id);
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / handshakes as f64;
    println!(
        "ecfleet ntlm: {:.1} us per login + {envelopes} envelopes of {size} B",
        per(own)
    );
    println!(
        "sspi ntlm:    {:.1} us per login + {envelopes} envelopes of {size} B",
        per(theirs)
    );
    println!(
        "sspi / ecfleet: {:.2}x",
        theirs.as_secs_f64() / own.as_secs_f64()
    );
}

/// `n` logins with ecfleet's client; the client's time.
fn own_stack(n: usize, envelopes: usize, envelope: &[u8], server_id: &Identity) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let id = Identity::new(USER, PASSWORD);
        let negotiate = negotiate_message();
        spent += started.elapsed();
        let acceptor = Acceptor::new(&negotiate, *b"srvchal!", filetime_now());
        let started = Instant::now();
        let challenge = Challenge::parse(acceptor.challenge()).expect("a challenge");
        let (answer, mut sealing) =
            authenticate(&id, &negotiate, &challenge, &Randomness::fresh(), None)
                .expect("an answer");
        spent += started.elapsed();
        let mut server = acceptor.accept(server_id, &answer).expect("accepted");
        for _ in 0..envelopes {
            let started = Instant::now();
            let (signature, sealed) = sealing.seal(envelope);
            spent += started.elapsed();
            let plain = server.unseal(&signature, &sealed).expect("unsealed");
            assert_eq!(plain, envelope);
        }
    }
    spent
}

/// `n` logins with sspi's NTLM client against the same acceptor; the client's time.
fn sspi_stack(n: usize, envelopes: usize, envelope: &[u8], server_id: &Identity) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..n {
        let started = Instant::now();
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::parse(USER).expect("a user name"),
            password: PASSWORD.to_string().into(),
        };
        let mut credentials = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .expect("credentials")
            .credentials_handle;
        let flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut credentials)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/ec1")
            .with_output(&mut output);
        ntlm.initialize_security_context_impl(&mut builder)
            .expect("a first step")
            .resolve_to_result()
            .expect("NEGOTIATE");
        let negotiate = std::mem::take(&mut output[0].buffer);
        spent += started.elapsed();
        let acceptor = Acceptor::new(&negotiate, *b"srvchal!", filetime_now());
        let started = Instant::now();
        let mut input = vec![SecurityBuffer::new(
            acceptor.challenge().to_vec(),
            BufferType::Token,
        )];
        let mut builder = ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut credentials)
            .with_context_requirements(flags)
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name("HTTP/ec1")
            .with_input(&mut input)
            .with_output(&mut output);
        let result = ntlm
            .initialize_security_context_impl(&mut builder)
            .expect("a second step")
            .resolve_to_result()
            .expect("AUTHENTICATE");
        if matches!(
            result.status,
            sspi::SecurityStatus::CompleteAndContinue | sspi::SecurityStatus::CompleteNeeded
        ) {
            ntlm.complete_auth_token(&mut output).expect("completed");
        }
        let answer = std::mem::take(&mut output[0].buffer);
        spent += started.elapsed();
        let mut server = acceptor
            .accept(server_id, &answer)
            .expect("ecfleet's acceptor takes sspi's AUTHENTICATE");
        for _ in 0..envelopes {
            let started = Instant::now();
            let mut token = vec![0u8; 16];
            let mut data = envelope.to_vec();
            let mut buffers = [
                SecurityBufferRef::token_buf(&mut token),
                SecurityBufferRef::data_buf(&mut data),
            ];
            ntlm.encrypt_message(EncryptionFlags::empty(), &mut buffers)
                .expect("sealed");
            let signature = buffers[0].data().to_vec();
            let sealed = buffers[1].data().to_vec();
            spent += started.elapsed();
            let plain = server
                .unseal(&signature, &sealed)
                .expect("ecfleet's acceptor unseals sspi's envelope");
            assert_eq!(plain, envelope);
        }
    }
    spent
}
