# ecfleet-agent facts probe for Windows PowerShell 5.1. Read-only: it changes nothing on the host.
# Every probe runs on its own: a failure sets that probe to $null and records the error, so one
# missing module or denied key never hides the rest. Output: one compressed JSON object, parsed by
# agent/src/backend/windows/parse.rs (which also copes with single objects where arrays are
# expected). The JSON is ASCII only (every other character as \uXXXX) and is written to the file
# the agent names in -OutFile: Windows PowerShell writes redirected stdout in the OEM code page,
# which turns localized messages into U+FFFD and, on CJK code pages, can put a 0x5C trail byte
# inside a JSON string. Dates are formatted here, as UTC ISO 8601 with the invariant culture:
# ConvertTo-Json would call ToUniversalTime() on ADSync's Kind-Unspecified UTC times and shift them
# by the host's offset.
param([string]$OutFile)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$Invariant = [System.Globalization.CultureInfo]::InvariantCulture

# Under AppLocker or App Control an unsigned script runs in ConstrainedLanguage: no Add-Type, no
# .NET beyond a short list of types (docs/design/DOMAIN.md §8b, S47). Say so with what that mode
# allows (cmdlets, hashtables, core types) and stop: the probes below would fail one by one. This
# comes before anything that mode refuses (an ArrayList is one).
$LanguageMode = [string]$ExecutionContext.SessionState.LanguageMode
if ($LanguageMode -ne 'FullLanguage') {
    $doc = @{
        collected_at = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
        host_name = $env:COMPUTERNAME
        language_mode = $LanguageMode
        errors = @(@{ probe = 'language_mode'; message = "PowerShell runs this script in $LanguageMode mode" })
    }
    $doc | ConvertTo-Json -Compress -Depth 4 | Set-Content -LiteralPath $OutFile -Encoding Ascii
    exit 0
}
$out = [ordered]@{}
$errs = New-Object System.Collections.ArrayList

function Probe([string]$Name, [scriptblock]$Body) {
    try {
        $out[$Name] = & $Body
    } catch {
        $out[$Name] = $null
        [void]$errs.Add([ordered]@{ probe = $Name; message = [string]$_.Exception.Message })
    }
}

# A registry value, or $null when the key or the value does not exist. Any other failure (access
# denied above all) is thrown, so that the probe reports an error instead of a missing value: a
# denied .NET key must never read as ".NET too old".
function RegValue([string]$Path, [string]$Value) {
    try { $key = Get-Item -LiteralPath $Path -ErrorAction Stop }
    catch [System.Management.Automation.ItemNotFoundException] { return $null }
    return $key.GetValue($Value, $null)
}

# A DateTime as UTC ISO 8601 (invariant culture). ADSync's times are Kind Unspecified but hold
# UTC: they are marked UTC, not converted; only Local times are converted.
function IsoUtc($Date) {
    if ($null -eq $Date) { return $null }
    $d = [DateTime]$Date
    if ($d.Kind -eq [DateTimeKind]::Local) { $d = $d.ToUniversalTime() }
    else { $d = [DateTime]::SpecifyKind($d, [DateTimeKind]::Utc) }
    return $d.ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
}

# The sync Health Agent's own services (not the cloud-sync / pass-through agents' updater, which
# shares the "Connect Agent Updater" display name).
$HealthServices = 'AzureADConnectHealthSyncInsights', 'AzureADConnectHealthSyncMonitor', 'AzureADConnectHealthAgent'

$out['collected_at'] = [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
$out['language_mode'] = $LanguageMode

Probe 'host_name' { $env:COMPUTERNAME }

Probe 'os' {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    [ordered]@{
        Caption = $os.Caption
        Version = $os.Version
        BuildNumber = $os.BuildNumber
        InstallationType = (RegValue 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' 'InstallationType')
    }
}

Probe 'dotnet' {
    [ordered]@{ Release = (RegValue 'HKLM:\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full' 'Release') }
}

Probe 'tls12' {
    $x64 = 'HKLM:\SOFTWARE\Microsoft\.NETFramework\v4.0.30319'
    $x86 = 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\.NETFramework\v4.0.30319'
    $sc = 'HKLM:\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2'
    [ordered]@{
        DotNetX64 = [ordered]@{ SystemDefaultTlsVersions = (RegValue $x64 'SystemDefaultTlsVersions'); SchUseStrongCrypto = (RegValue $x64 'SchUseStrongCrypto') }
        DotNetX86 = [ordered]@{ SystemDefaultTlsVersions = (RegValue $x86 'SystemDefaultTlsVersions'); SchUseStrongCrypto = (RegValue $x86 'SchUseStrongCrypto') }
        SchannelClient = [ordered]@{ Enabled = (RegValue "$sc\Client" 'Enabled'); DisabledByDefault = (RegValue "$sc\Client" 'DisabledByDefault') }
        SchannelServer = [ordered]@{ Enabled = (RegValue "$sc\Server" 'Enabled'); DisabledByDefault = (RegValue "$sc\Server" 'DisabledByDefault') }
    }
}

Probe 'disk' {
    Get-CimInstance -ClassName Win32_LogicalDisk -Filter "DeviceID='$($env:SystemDrive)'" |
        Select-Object DeviceID, FreeSpace, Size
}

Probe 'adsync_service' {
    $svc = Get-CimInstance -ClassName Win32_Service -Filter "Name='ADSync'"
    if ($null -eq $svc) { [ordered]@{ Name = 'ADSync'; State = 'NotFound' } }
    else { $svc | Select-Object Name, DisplayName, State, StartMode, PathName }
}

Probe 'engine' {
    $svc = Get-CimInstance -ClassName Win32_Service -Filter "Name='ADSync'"
    if ($null -eq $svc) { throw 'Service ADSync was not found' }
    $path = $svc.PathName.Trim()
    if ($path.StartsWith('"')) { $path = $path.Substring(1, $path.IndexOf('"', 1) - 1) }
    elseif ($path -match '^(.+?\.exe)') { $path = $Matches[1] }
    $info = (Get-Item -LiteralPath $path).VersionInfo
    $script:enginePath = $path
    [ordered]@{ Path = $path; FileVersion = $info.FileVersion; ProductVersion = $info.ProductVersion }
}

# The database: LocalDB stops at 10 GB and auto-upgrade refuses from 8 GB (docs/design/DOMAIN.md §3.4).
Probe 'database' {
    $params = 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters'
    if (-not (Test-Path -LiteralPath $params)) { throw "$params does not exist" }
    $mdf = $null
    $denied = @()
    $data = $null
    if ($script:enginePath) { $data = Join-Path (Split-Path (Split-Path $script:enginePath -Parent) -Parent) 'Data' }
    # A full SQL Server install may have no Data folder at all: nothing to search then.
    if ($data -and (Test-Path -LiteralPath $data)) {
        # Folders the search could not enter are reported, never skipped in silence: a LocalDB
        # behind a denied folder must not read as "no LocalDB file".
        $mdf = Get-ChildItem -LiteralPath $data -Filter 'ADSync.mdf' -Recurse -ErrorAction SilentlyContinue -ErrorVariable denied |
            Sort-Object Length -Descending | Select-Object -First 1
    }
    [ordered]@{
        Server = (RegValue $params 'Server')
        SQLInstance = (RegValue $params 'SQLInstance')
        DataFile = $(if ($mdf) { $mdf.FullName } else { $null })
        DataFileBytes = $(if ($mdf) { $mdf.Length } else { $null })
        SearchErrors = @($denied | Select-Object -First 3 | ForEach-Object { [string]$_.Exception.Message })
    }
}

# miiserver.exe.config edited after the install, and its DiagnosticSource redirect (§7 #11).
Probe 'engine_config' {
    if (-not $script:enginePath) { throw 'the sync engine was not found (see the engine probe)' }
    $path = "$($script:enginePath).config"
    $xml = New-Object System.Xml.XmlDocument
    $xml.Load($path)
    $redirect = $xml.SelectNodes("//*[local-name()='dependentAssembly'][*[local-name()='assemblyIdentity' and @name='System.Diagnostics.DiagnosticSource']][*[local-name()='bindingRedirect']]")
    [ordered]@{
        Path = $path
        LastWriteTimeUtc = (IsoUtc (Get-Item -LiteralPath $path).LastWriteTimeUtc)
        EngineLastWriteTimeUtc = (IsoUtc (Get-Item -LiteralPath $script:enginePath).LastWriteTimeUtc)
        DiagnosticSourceRedirect = ($redirect.Count -gt 0)
    }
}

# Microsoft's docs name both folders; an InstallLocation in the uninstall entry wins.
Probe 'wizard' {
    $dirs = New-Object System.Collections.ArrayList
    foreach ($root in 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall', 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall') {
        Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue | ForEach-Object {
            $p = Get-ItemProperty -LiteralPath $_.PSPath -ErrorAction SilentlyContinue
            if ($p.DisplayName -match '^(Microsoft )?(Azure AD Connect|Entra Connect( Sync)?)$' -and $p.InstallLocation) { [void]$dirs.Add($p.InstallLocation) }
        }
    }
    [void]$dirs.Add((Join-Path $env:ProgramFiles 'Microsoft Azure AD Connect'))
    [void]$dirs.Add((Join-Path $env:ProgramFiles 'Microsoft Azure Active Directory Connect'))
    $found = $null
    foreach ($d in $dirs) {
        $exe = Join-Path $d 'AzureADConnect.exe'
        if (Test-Path -LiteralPath $exe) { $found = (Get-Item -LiteralPath $exe).VersionInfo.ProductVersion; break }
    }
    $found
}

Probe 'uninstall' {
    $roots = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall', 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall'
    foreach ($root in $roots) {
        Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue | ForEach-Object {
            $p = Get-ItemProperty -LiteralPath $_.PSPath -ErrorAction SilentlyContinue
            if ($p.DisplayName -match 'Azure AD Connect|Entra Connect|Azure AD Sync') {
                [ordered]@{ DisplayName = $p.DisplayName; DisplayVersion = $p.DisplayVersion; Key = $_.PSChildName; Wow6432 = ($root -like '*WOW6432Node*') }
            }
        }
    }
}

# By name first, then by full path as Microsoft's docs do (the module is not always on PSModulePath).
Probe 'adsync_module' {
    try { Import-Module ADSync -ErrorAction Stop }
    catch {
        $base = RegValue 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters' 'Path'
        if (-not $base) { throw }
        Import-Module (Join-Path $base 'Bin\ADSync\ADSync.psd1') -ErrorAction Stop
    }
    $true
}

Probe 'global_settings' {
    $params = (Get-ADSyncGlobalSettings).Parameters
    [ordered]@{
        ServerConfigurationVersion = ($params | Where-Object { $_.Name -eq 'Microsoft.Synchronize.ServerConfigurationVersion' }).Value
        AutoUpgradeSuspensionReason = ($params | Where-Object { $_.Name -eq 'Microsoft.OptionalFeature.AutoUpgradeSuspensionReason' }).Value
    }
}

Probe 'scheduler' {
    Get-ADSyncScheduler | Select-Object SyncCycleEnabled, StagingModeEnabled, SchedulerSuspended,
        SyncCycleInProgress, MaintenanceEnabled,
        @{ n = 'NextSyncCycleStartTimeInUTC'; e = { IsoUtc $_.NextSyncCycleStartTimeInUTC } },
        CurrentlyEffectiveSyncCycleInterval
}

# Per connector, so that a busy connector's runs never push another's last export out of view.
Probe 'run_history' {
    foreach ($c in @(Get-ADSyncConnector)) {
        Get-ADSyncRunProfileResult -ConnectorId $c.Identifier -NumberRequested 20 |
            Select-Object ConnectorName, RunProfileName, Result, IsRunComplete,
                @{ n = 'StartDate'; e = { IsoUtc $_.StartDate } }, @{ n = 'EndDate'; e = { IsoUtc $_.EndDate } }
    }
}

Probe 'auto_upgrade' { [string](Get-ADSyncAutoUpgrade) }

Probe 'health_agent' {
    Get-CimInstance -ClassName Win32_Service |
        Where-Object { $HealthServices -contains $_.Name } |
        Select-Object Name, DisplayName, State, StartMode
}

Probe 'open_ui' {
    @(Get-Process -Name 'AzureADConnect', 'miisclient' -ErrorAction SilentlyContinue | ForEach-Object { $_.ProcessName })
}

Probe 'sync_rules' {
    Get-ADSyncRule | Select-Object Name, ImmutableTag, Precedence, Disabled
}

Probe 'connectors' {
    Get-ADSyncConnector | Select-Object Name, @{ n = 'Identifier'; e = { [string]$_.Identifier } },
        @{ n = 'Type'; e = { [string]$_.Type } }
}

# An upgrade under way or just done: the installer's processes, and the upgrade's own events in the
# Application log (docs/design/DOMAIN.md §5: source "Microsoft Entra Connect Upgrade", older builds
# "Azure AD Connect Upgrade", ids 300-399), of the last day.
# The installer: msiexec.exe installing the product's packages (the wizard itself is open_ui). The
# Windows Installer's own events for the product: 11707 installed, 11708 failed, 1033 its status
# (docs/design/DOMAIN.md §8b, S50). The tail of the wizard's newest trace log.
Probe 'upgrade_activity' {
    $installer = @(Get-CimInstance -ClassName Win32_Process -Filter "Name = 'msiexec.exe'" |
        Where-Object { $_.CommandLine -match 'AzureADConnect\.msi|Synchronization Service\.msi' }).Count -gt 0
    $since = (Get-Date).AddDays(-1)
    $msi = @()
    try {
        $msi = @(Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = 'MsiInstaller'; Id = 11707, 11708, 1033; StartTime = $since } -MaxEvents 200 -ErrorAction Stop |
            Where-Object { [string]$_.Message -match 'Azure AD Connect|Entra Connect|Azure AD Sync' } | Select-Object -First 20 |
            ForEach-Object { [ordered]@{ Time = (IsoUtc $_.TimeCreated); Id = $_.Id; Message = ([string]$_.Message -split "`r?`n")[0] } })
    } catch [System.Exception] {
        if ($_.FullyQualifiedErrorId -notmatch 'NoMatchingEventsFound|NoMatchingLogsFound|NoMatchingProvidersFound|LogsAndProvidersDontOverlap') { throw }
    }
    $tail = @()
    $trace = Get-ChildItem -LiteralPath (Join-Path $env:ProgramData 'AADConnect') -Filter 'trace-*.log' -File -ErrorAction SilentlyContinue |
        Sort-Object LastWriteTimeUtc -Descending | Select-Object -First 1
    if ($trace) { $tail = @(Get-Content -LiteralPath $trace.FullName -Tail 15 -ErrorAction Stop) }
    $events = @()
    foreach ($source in 'Microsoft Entra Connect Upgrade', 'Azure AD Connect Upgrade') {
        try {
            $events += @(Get-WinEvent -FilterHashtable @{ LogName = 'Application'; ProviderName = $source; StartTime = $since } -MaxEvents 20 -ErrorAction Stop |
                ForEach-Object { [ordered]@{ Time = (IsoUtc $_.TimeCreated); Id = $_.Id; Message = ([string]$_.Message -split "`r?`n")[0] } })
        } catch [System.Exception] {
            if ($_.FullyQualifiedErrorId -notmatch 'NoMatchingEventsFound|NoMatchingLogsFound|NoMatchingProvidersFound|LogsAndProvidersDontOverlap') { throw }
        }
    }
    [ordered]@{ InstallerRunning = $installer; Events = @($events); InstallerEvents = @($msi); WizardLogTail = @($tail) }
}

# The overrides an upgrade leaves when it changed the out-of-box rules: a full import and a full
# synchronization still to run on these connectors (docs/design/DOMAIN.md §8b, S42).
Probe 'connector_overrides' {
    $names = @{}
    foreach ($c in @(Get-ADSyncConnector)) { $names[[string]$c.Identifier] = $c.Name }
    @(Get-ADSyncSchedulerConnectorOverride | ForEach-Object {
        $id = [string]$_.ConnectorIdentifier
        [ordered]@{
            Connector = $(if ($names.ContainsKey($id)) { $names[$id] } else { $id })
            FullImportRequired = [bool]$_.FullImportRequired
            FullSyncRequired = [bool]$_.FullSyncRequired
        }
    })
}

# How the Entra connector authenticates (application-based authentication, required by
# 2027-04-07; docs/design/DOMAIN.md §8b, S45). Builds without the cmdlet report nothing.
Probe 'entra_auth' {
    if (Get-Command -Name Get-ADSyncEntraConnectorCredential -ErrorAction SilentlyContinue) {
        # One answer per Entra connector: any still on the legacy account is what counts.
        $types = @(Get-ADSyncEntraConnectorCredential | ForEach-Object { [string]$_.ConnectorIdentityType })
        $type = $null
        if ($types -contains 'ServiceAccount') { $type = 'ServiceAccount' } elseif ($types.Count) { $type = $types[0] }
        if ($type) { [ordered]@{ ConnectorIdentityType = $type } } else { $null }
    } else { $null }
}

# The wizard's MFA page in Trusted Sites (zone 2), else its sign-in can hang (docs/design/DOMAIN.md §5, §7 #7):
# by the Site to Zone Assignment List policy, or in the ZoneMap of each loaded user hive.
Probe 'trusted_sites' {
    $site = 'https://secure.aadcdn.microsoftonline-p.com'
    $zone2 = { param($v) $null -ne $v -and [string]$v -eq '2' }
    $policy = $false
    foreach ($root in 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\CurrentVersion\Internet Settings\ZoneMapKey',
                      'HKLM:\SOFTWARE\WOW6432Node\Policies\Microsoft\Windows\CurrentVersion\Internet Settings\ZoneMapKey') {
        foreach ($name in $site, 'https://*.microsoftonline-p.com', '*.microsoftonline-p.com', 'microsoftonline-p.com') {
            if (& $zone2 (RegValue $root $name)) { $policy = $true }
        }
    }
    $checked = 0
    $profiles = @()
    foreach ($hive in @(Get-ChildItem -LiteralPath 'Registry::HKEY_USERS' | Where-Object { $_.PSChildName -match '^S-1-5-21-[\d-]+$' })) {
        $checked++
        $zm = "Registry::HKEY_USERS\$($hive.PSChildName)\Software\Microsoft\Windows\CurrentVersion\Internet Settings\ZoneMap"
        foreach ($map in 'Domains', 'EscDomains') {
            $sub = "$zm\$map\microsoftonline-p.com"
            if ((& $zone2 (RegValue "$sub\secure.aadcdn" 'https')) -or (& $zone2 (RegValue "$sub\secure.aadcdn" '*')) -or
                (& $zone2 (RegValue $sub 'https')) -or (& $zone2 (RegValue $sub '*'))) {
                $profiles += $hive.PSChildName
                break
            }
        }
    }
    [ordered]@{ Policy = $policy; Profiles = @($profiles); ProfilesChecked = $checked }
}

$out['errors'] = $errs
$json = $out | ConvertTo-Json -Depth 6 -Compress
# ASCII only: everything above 0x7E as \uXXXX (JSON's own escape), so no code page can break it.
$ascii = New-Object System.Text.StringBuilder ($json.Length + 64)
foreach ($ch in $json.ToCharArray()) {
    if ([int]$ch -gt 126) { [void]$ascii.Append('\u').Append(([int]$ch).ToString('x4', $Invariant)) }
    else { [void]$ascii.Append($ch) }
}
if ($OutFile) { [System.IO.File]::WriteAllText($OutFile, $ascii.ToString(), [System.Text.Encoding]::ASCII) }
else { $ascii.ToString() }
