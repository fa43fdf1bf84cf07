# ecfleet-agent backup for Windows PowerShell 5.1. It writes only below -OutDir (a folder the
# agent made for this backup) and -OutFile; it changes nothing of the sync engine. Gathers
# (docs/backup.md, docs/design/DOMAIN.md §8b S43/S44):
# - the migration export folder, Exported-ServerConfiguration-<GUID> in -OutDir, as Microsoft's
#   MigrateSettings.ps1 makes it (the Get-ADSyncServerConfiguration dump, a copy of
#   %ProgramData%\AADConnect\PersistedState.xml, and MigratedPolicy.json, the file the wizard's
#   "Import synchronization settings" takes): by the installed script where it is, else by the
#   same steps taken here, and said which;
# - the newest Applied-SynchronizationPolicy-*.json the wizard left in %ProgramData%\AADConnect
#   (its path; the agent copies it);
# - miiserver.exe.config (its path) and the <system.net> section of the 64-bit machine.config
#   (written to -OutDir), which neither export holds;
# - the connectors' newest LastModificationTime, and ecfleet's reading of the configuration
#   (custom and edited default sync rules, connectors with their partition filters, the
#   scheduler, the global settings) for drift.
# Every part runs on its own: a failure sets it to $null and records the error. Output as in
# facts.ps1: one compressed JSON object, ASCII only (\uXXXX), written to -OutFile; parsed by
# agent/src/backend/windows/backup.rs.
param([string]$OutFile, [string]$OutDir)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$Invariant = [System.Globalization.CultureInfo]::InvariantCulture

# Under ConstrainedLanguage (AppLocker, App Control) nothing below can run: say so, in what that
# mode allows, before anything it refuses (as facts.ps1 does).
$LanguageMode = [string]$ExecutionContext.SessionState.LanguageMode
if ($LanguageMode -ne 'FullLanguage') {
    $doc = @{
        collected_at = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
        host_name = $env:COMPUTERNAME
        language_mode = $LanguageMode
        errors = @(@{ probe = 'adsync_module'; message = "PowerShell runs the backup script in $LanguageMode mode (an AppLocker or App Control policy): allow the agent's folder or sign the agent's scripts" })
    }
    $doc | ConvertTo-Json -Compress -Depth 4 | Set-Content -LiteralPath $OutFile -Encoding Ascii
    exit 0
}
$out = [ordered]@{}
$errs = New-Object System.Collections.ArrayList

# A DateTime as UTC ISO 8601 (invariant culture); ADSync's Unspecified times hold UTC.
function IsoUtc($Date) {
    if ($null -eq $Date) { return $null }
    $d = [DateTime]$Date
    if ($d.Kind -eq [DateTimeKind]::Local) { $d = $d.ToUniversalTime() }
    [DateTime]::SpecifyKind($d, [DateTimeKind]::Utc).ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
}

$exportProblem = $null
function Part([string]$Name, [scriptblock]$Body) {
    try {
        $out[$Name] = & $Body
    } catch {
        $out[$Name] = $null
        [void]$errs.Add([ordered]@{ probe = $Name; message = [string]$_.Exception.Message })
    }
}

$out['collected_at'] = [DateTime]::UtcNow.ToString('yyyy-MM-ddTHH:mm:ssZ', $Invariant)
Part 'host_name' { $env:COMPUTERNAME }

# By name first, then by full path as Microsoft's docs do.
Part 'adsync_module' {
    try { Import-Module ADSync -ErrorAction Stop }
    catch {
        $base = (Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters' -ErrorAction Stop).Path
        if (-not $base) { throw }
        Import-Module (Join-Path $base 'Bin\ADSync\ADSync.psd1') -ErrorAction Stop
    }
    $true
}

Part 'engine_version' {
    $base = (Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters' -ErrorAction Stop).Path
    [string](Get-Item -LiteralPath (Join-Path $base 'Bin\miiserver.exe')).VersionInfo.ProductVersion
}

# The wizard writes one after every change it makes (docs/design/DOMAIN.md §4): the newest is what a new
# server imports. Changes made in PowerShell or the Rules Editor are not in it: the dump has them.
Part 'applied_policy' {
    $dir = Join-Path $env:ProgramData 'AADConnect'
    $newest = Get-ChildItem -LiteralPath $dir -Filter 'Applied-SynchronizationPolicy-*.json' -File -ErrorAction Stop |
        Sort-Object LastWriteTimeUtc -Descending | Select-Object -First 1
    if ($newest) { $newest.FullName } else { $null }
}

# MigrateSettings.ps1 ships in the wizard's Tools folder. It always exits normally and says what
# went wrong only in its output, so what it left in the folder is what counts.
$DumpDir = Join-Path $OutDir ('Exported-ServerConfiguration-' + [System.Guid]::NewGuid())
Part 'export_method' {
    $candidates = @()
    $wizard = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Azure AD Connect' -ErrorAction SilentlyContinue
    if ($wizard -and $wizard.WizardPath) { $candidates += Join-Path (Split-Path -Parent $wizard.WizardPath) 'Tools\MigrateSettings.ps1' }
    $candidates += Join-Path $env:ProgramFiles 'Microsoft Azure Active Directory Connect\Tools\MigrateSettings.ps1'
    $script = $candidates | Where-Object { Test-Path -LiteralPath $_ -PathType Leaf } | Select-Object -First 1
    if ($script) {
        # Microsoft's script with PowerShell's own defaults, not this script's Stop and silence:
        # its non-fatal errors stay non-fatal and its warnings reach its output.
        $said = ''
        try {
            $ErrorActionPreference = 'Continue'
            $WarningPreference = 'Continue'
            $said = (& $script -ServerConfiguration $DumpDir *>&1 | Out-String).Trim()
        } catch {
            $said = $said + ' ' + [string]$_.Exception.Message
        } finally {
            $ErrorActionPreference = 'Stop'
            $WarningPreference = 'SilentlyContinue'
        }
        $missing = @('MigratedPolicy.json', 'PersistedState.xml' | Where-Object { -not (Test-Path -LiteralPath (Join-Path $DumpDir $_)) })
        if ($missing.Count) {
            $lines = @($said -split "`r?`n" | Where-Object { $_.Trim() }) | Select-Object -Last 3
            $script:exportProblem = "MigrateSettings.ps1 left no " + ($missing -join ' and ') + ': ' + ($lines -join ' ')
        }
        "MigrateSettings.ps1 ($script)"
    } else {
        # Its steps: the dump, the persisted state, the metadata-only MigratedPolicy.json.
        Get-ADSyncServerConfiguration -Path $DumpDir | Out-Null
        $programData = Join-Path $env:ProgramData 'AADConnect'
        try {
            Copy-Item -LiteralPath (Join-Path $programData 'PersistedState.xml') -Destination $DumpDir -ErrorAction Stop
            $wizardVersion = ''
            if ($wizard -and $wizard.WizardPath) { $wizardVersion = [string][Diagnostics.FileVersionInfo]::GetVersionInfo($wizard.WizardPath).FileVersion }
            $params = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters' -ErrorAction SilentlyContinue
            $service = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync' -Name ObjectName -ErrorAction SilentlyContinue
            $policy = [ordered]@{
                policyMetadata = [ordered]@{
                    type = 'migration'
                    author = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name
                    timeCreated = (Get-Date).ToUniversalTime().ToString('u', $Invariant)
                    azureADConnectVersion = $wizardVersion
                }
                deploymentMetadata = [ordered]@{
                    hostName = ([System.Net.Dns]::GetHostByName($env:COMPUTERNAME)).HostName
                    serviceAccount = $service.ObjectName
                    serviceAccountType = 'Unknown'
                    databaseServer = $params.Server
                    databaseInstance = $params.SQLInstance
                    databaseName = $params.DBName
                    connectorIds = [string[]]@(Get-ADSyncConnector | ForEach-Object { [string]$_.Identifier })
                }
            }
            $policy | ConvertTo-Json | Out-File (Join-Path $DumpDir 'MigratedPolicy.json')
        } catch {
            $script:exportProblem = 'copying PersistedState.xml: ' + [string]$_.Exception.Message
        }
        'the agent''s own steps, as MigrateSettings.ps1 takes them: the script is not in the product''s Tools folder'
    }
}
$out['export_problem'] = $exportProblem

# The dump is the core of the folder: without its XML files there is no export at all.
Part 'dump' {
    if (-not (Get-ChildItem -LiteralPath $DumpDir -Recurse -Filter '*.xml' -File -ErrorAction SilentlyContinue |
              Where-Object { $_.Name -ne 'PersistedState.xml' } | Select-Object -First 1)) {
        Get-ADSyncServerConfiguration -Path $DumpDir | Out-Null
    }
    $DumpDir
}

# What the wizard's JSON is compared with: the newest change the connectors show.
Part 'configuration_changed_at' {
    $newest = @(Get-ADSyncConnector | ForEach-Object { $_.LastModificationTime } | Where-Object { $_ }) |
        Sort-Object -Descending | Select-Object -First 1
    if ($newest) { IsoUtc $newest } else { $null }
}

Part 'engine_config' {
    $base = (Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\ADSync\Parameters' -ErrorAction Stop).Path
    $path = Join-Path $base 'Bin\miiserver.exe.config'
    if (Test-Path -LiteralPath $path -PathType Leaf) { $path } else { $null }
}

# The proxy lives in machine.config's <system.net> (docs/design/DOMAIN.md §3.4): that section alone.
Part 'proxy_config' {
    $config = Join-Path $env:SystemRoot 'Microsoft.NET\Framework64\v4.0.30319\Config\machine.config'
    [xml]$doc = Get-Content -LiteralPath $config -Raw -ErrorAction Stop
    $node = $doc.configuration.SelectSingleNode('system.net')
    if ($node) {
        $file = Join-Path $OutDir 'machine.config-system.net.xml'
        [System.IO.File]::WriteAllText($file, $node.OuterXml, (New-Object System.Text.UTF8Encoding $false))
        $file
    } else { $null }
}

$connectorNames = @{}
Part 'connectors' {
    foreach ($c in @(Get-ADSyncConnector)) {
        $connectorNames[[string]$c.Identifier] = $c.Name
        [ordered]@{
            Name = $c.Name
            Identifier = [string]$c.Identifier
            Type = [string]$c.Type
            Partitions = @($c.Partitions | ForEach-Object {
                [ordered]@{
                    Name = $_.Name
                    Selected = [bool]$_.Selected
                    Inclusions = @($_.ConnectorPartitionScope.ContainerInclusionList)
                    Exclusions = @($_.ConnectorPartitionScope.ContainerExclusionList)
                }
            })
        }
    }
}

# Custom rules (no ImmutableTag) and disabled default rules, rendered as text for drift.
Part 'rules' {
    Get-ADSyncRule | Where-Object { -not $_.ImmutableTag -or $_.Disabled } | ForEach-Object {
        $r = $_
        [ordered]@{
            Identifier = [string]$r.Identifier
            Name = $r.Name
            Direction = [string]$r.Direction
            Precedence = $r.Precedence
            Connector = $connectorNames[[string]$r.Connector]
            ImmutableTag = $r.ImmutableTag
            Disabled = [bool]$r.Disabled
            Scoping = @($r.ScopeFilter | ForEach-Object { $_.ScopeConditionList } | ForEach-Object {
                '{0} {1} {2}' -f $_.Attribute, $_.ComparisonOperator, $_.ComparisonValue })
            Join = @($r.JoinFilter | ForEach-Object { $_.JoinConditionList } | ForEach-Object {
                '{0} = {1}' -f $_.CSAttribute, $_.MVAttribute })
            Flows = @($r.AttributeFlowMappings | ForEach-Object {
                '{0} -> {1} ({2})' -f (@($_.Source) -join ','), $_.Destination, $_.FlowType })
        }
    }
}

Part 'scheduler' {
    Get-ADSyncScheduler | Select-Object CustomizedSyncCycleInterval, CurrentlyEffectiveSyncCycleInterval,
        StagingModeEnabled, SyncCycleEnabled
}

Part 'global_settings' {
    (Get-ADSyncGlobalSettings).Parameters | ForEach-Object { [ordered]@{ Name = $_.Name; Value = [string]$_.Value } }
}

$out['errors'] = $errs
$json = $out | ConvertTo-Json -Depth 8 -Compress
$ascii = New-Object System.Text.StringBuilder ($json.Length + 64)
foreach ($ch in $json.ToCharArray()) {
    if ([int]$ch -gt 126) { [void]$ascii.Append('\u').Append(([int]$ch).ToString('x4', $Invariant)) }
    else { [void]$ascii.Append($ch) }
}
if ($OutFile) { [System.IO.File]::WriteAllText($OutFile, $ascii.ToString(), [System.Text.Encoding]::ASCII) }
else { $ascii.ToString() }
