# ecfleet-agent facts probe for Windows PowerShell 5.1. Read-only: it changes nothing on the host.
# Every probe runs on its own: a failure sets that probe to $null and records the error, so one
# missing module or denied key never hides the rest. Output: one compressed JSON object, parsed by
# agent/src/backend/windows/parse.rs (which also copes with PS 5.1's /Date(...)/ dates and with
# single objects where arrays are expected).
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
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

function RegValue([string]$Path, [string]$Value) {
    $item = Get-ItemProperty -LiteralPath $Path -Name $Value -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return $item.$Value
}

$out['collected_at'] = [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ')

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

# The database: LocalDB stops at 10 GB and auto-upgrade refuses from 8 GB (DOMAIN.md §3.4).
Probe 'database' {
    $params = 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters'
    if (-not (Test-Path -LiteralPath $params)) { throw "$params does not exist" }
    $mdf = $null
    if ($script:enginePath) {
        $data = Join-Path (Split-Path (Split-Path $script:enginePath -Parent) -Parent) 'Data'
        $mdf = Get-ChildItem -LiteralPath $data -Filter 'ADSync.mdf' -Recurse -ErrorAction SilentlyContinue |
            Sort-Object Length -Descending | Select-Object -First 1
    }
    [ordered]@{
        Server = (RegValue $params 'Server')
        SQLInstance = (RegValue $params 'SQLInstance')
        DataFile = $(if ($mdf) { $mdf.FullName } else { $null })
        DataFileBytes = $(if ($mdf) { $mdf.Length } else { $null })
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
        LastWriteTimeUtc = (Get-Item -LiteralPath $path).LastWriteTimeUtc
        EngineLastWriteTimeUtc = (Get-Item -LiteralPath $script:enginePath).LastWriteTimeUtc
        DiagnosticSourceRedirect = ($redirect.Count -gt 0)
    }
}

Probe 'wizard' {
    $exe = Join-Path $env:ProgramFiles 'Microsoft Azure AD Connect\AzureADConnect.exe'
    if (Test-Path -LiteralPath $exe) { (Get-Item -LiteralPath $exe).VersionInfo.ProductVersion } else { $null }
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

Probe 'adsync_module' { Import-Module ADSync -ErrorAction Stop; $true }

Probe 'global_settings' {
    $params = (Get-ADSyncGlobalSettings).Parameters
    [ordered]@{
        ServerConfigurationVersion = ($params | Where-Object { $_.Name -eq 'Microsoft.Synchronize.ServerConfigurationVersion' }).Value
        AutoUpgradeSuspensionReason = ($params | Where-Object { $_.Name -eq 'Microsoft.OptionalFeature.AutoUpgradeSuspensionReason' }).Value
    }
}

Probe 'scheduler' {
    Get-ADSyncScheduler | Select-Object SyncCycleEnabled, StagingModeEnabled, SchedulerSuspended,
        SyncCycleInProgress, MaintenanceEnabled, NextSyncCycleStartTimeInUTC, CurrentlyEffectiveSyncCycleInterval
}

Probe 'run_history' {
    Get-ADSyncRunProfileResult -NumberRequested 60 |
        Select-Object ConnectorName, RunProfileName, Result, StartDate, EndDate
}

Probe 'auto_upgrade' { [string](Get-ADSyncAutoUpgrade) }

Probe 'health_agent' {
    Get-CimInstance -ClassName Win32_Service |
        Where-Object { $_.Name -like 'AzureADConnectHealth*' -or $_.DisplayName -like '*Connect Health*' -or $_.DisplayName -like '*Connect Agent Updater*' } |
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

$out['errors'] = $errs
$out | ConvertTo-Json -Depth 6 -Compress
