//! Application-based authentication (docs/design/DOMAIN.md §8b, S45): Microsoft requires the
//! Entra connector to authenticate as an application (and 2.6.84.0 or later) by 2027-04-07,
//! after which legacy authentication stops and so does sync. The version half is the catalog's
//! `aba-2027` deadline; this is the authentication half, read from
//! `Get-ADSyncEntraConnectorCredential`'s `ConnectorIdentityType`.

use ecfleet_proto::Facts;
use jiff::civil::Date;

use super::model::{Check, Code, Severity};

/// The day legacy authentication stops (Microsoft's prerequisites and upgrade pages).
pub const APP_AUTH_DEADLINE: Date = jiff::civil::date(2027, 4, 7);

/// Within this many days of the deadline the finding is critical.
const CRITICAL_WITHIN_DAYS: i32 = 90;

/// `app-auth-missing` when the connector still signs in with the legacy account; `None` when it
/// uses an application, or the build has no such cmdlet (the version checks speak for it).
pub fn app_auth(facts: &Facts, as_of: Date) -> Option<Check> {
    let auth = facts.entra_auth.as_ref()?;
    if auth.identity_type.eq_ignore_ascii_case("Application") {
        return None;
    }
    let days = (APP_AUTH_DEADLINE - as_of).get_days();
    let (severity, when) = if days < 0 {
        (
            Severity::Critical,
            format!(
                "since {APP_AUTH_DEADLINE} legacy authentication no longer works and sync stops"
            ),
        )
    } else {
        (
            if days <= CRITICAL_WITHIN_DAYS {
                Severity::Critical
            } else {
                Severity::Warning
            },
            format!(
                "Microsoft requires application-based authentication by {APP_AUTH_DEADLINE} ({days} days left), after which sync stops"
            ),
        )
    };
    Some(Check::new(
        Code::AppAuthMissing,
        severity,
        format!(
            "the Entra connector signs in as {} (legacy authentication, not an application): {when}",
            super::shown(&auth.identity_type)
        ),
        "on 2.6.84.0 or later, in the Entra Connect wizard choose Additional tasks > Configure application-based authentication to Microsoft Entra ID (Hybrid Identity Administrator sign-in); then Get-ADSyncEntraConnectorCredential shows ConnectorIdentityType Application",
        &["entra_auth"],
    ))
}

/// `constrained-language` when PowerShell runs the agent's scripts in a mode other than
/// FullLanguage (AppLocker or App Control for Business; docs/design/DOMAIN.md §8b, S47).
pub fn language_mode(facts: &Facts) -> Option<Check> {
    let mode = facts.language_mode.as_deref()?;
    if mode.eq_ignore_ascii_case("FullLanguage") {
        return None;
    }
    Some(Check::new(
        Code::ConstrainedLanguage,
        Severity::Critical,
        format!(
            "PowerShell runs the agent's scripts in {} mode (an AppLocker or App Control for Business policy): the agent cannot read this host, back it up or check the installer",
            super::shown(mode)
        ),
        "allow the agent's folder (C:\\ProgramData\\ecfleet, where it writes its scripts) in the policy's script rules, or sign the agent's scripts with a certificate the policy trusts; then audit again",
        &["language_mode"],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecfleet_proto::EntraAuthFacts;

    fn facts(identity: Option<&str>) -> Facts {
        Facts {
            entra_auth: identity.map(|t| EntraAuthFacts {
                identity_type: t.into(),
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn legacy_authentication_is_a_finding_that_grows_critical_near_the_deadline() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert!(app_auth(&facts(Some("Application")), d("2026-12-07")).is_none());
        assert!(app_auth(&facts(None), d("2026-12-07")).is_none());
        let c = app_auth(&facts(Some("ServiceAccount")), d("2026-12-07")).unwrap();
        assert_eq!(
            (c.code, c.severity),
            (Code::AppAuthMissing, Severity::Warning)
        );
        assert!(c.message.contains("121 days left"), "{}", c.message);
        assert!(c.fix.contains("Configure application-based authentication"));
        let c = app_auth(&facts(Some("ServiceAccount")), d("2027-02-01")).unwrap();
        assert_eq!(c.severity, Severity::Critical);
        let c = app_auth(&facts(Some("ServiceAccount")), d("2027-05-01")).unwrap();
        assert!(c.message.contains("no longer works"), "{}", c.message);
    }

    #[test]
    fn constrained_language_names_the_policy_and_the_fix() {
        let mut f = Facts::default();
        assert!(language_mode(&f).is_none());
        f.language_mode = Some("FullLanguage".into());
        assert!(language_mode(&f).is_none());
        f.language_mode = Some("ConstrainedLanguage".into());
        let c = language_mode(&f).unwrap();
        assert_eq!(c.severity, Severity::Critical);
        assert!(c.message.contains("AppLocker") && c.fix.contains("ProgramData"));
    }
}
