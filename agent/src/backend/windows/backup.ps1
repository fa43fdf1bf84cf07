# ecfleet-agent backup for Windows PowerShell 5.1. It writes only below -DumpDir (a folder the
# agent made for this backup) and -OutFile; it changes nothing of the sync engine. Gathers:
# the newest Applied-SynchronizationPolicy-*.json the wizard left in %ProgramData%\AADConnect (its
# path; the agent copies it), a Get-ADSyncServerConfiguration dump into -DumpDir, and ecfleet's
# reading of the configuration (custom and edited default sync rules, connectors with their
# partition filters, the scheduler, the global settings) for drift. Every part runs on its own:
# a failure sets it to $null and records the error. Output as in facts.ps1: one compressed JSON
# object, ASCII only (\uXXXX), written to -OutFile; parsed by agent/src/backend/windows/backup.rs.
param([string]$OutFile, [string]$DumpDir)
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$Invariant = [System.Globalization.CultureInfo]::InvariantCulture
$out = [ordered]@{}
$errs = New-Object System.Collections.ArrayList

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

Part 'dump' {
    Get-ADSyncServerConfiguration -Path $DumpDir | Out-Null
    $DumpDir
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
