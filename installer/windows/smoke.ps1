# Run `bucket-chat-desktop.exe --smoke` (a windowed executable) and check what only Windows
# can show: the keyring backend is the Windows Credential Manager, binary files keep their
# bytes, the process carries its AppUserModelID. Gives up after 5 minutes instead of
# hanging the job.
#
#   & installer\windows\smoke.ps1 <path to bucket-chat-desktop.exe>
param([Parameter(Mandatory)][string]$Exe)
$ErrorActionPreference = 'Stop'
$out = Join-Path $env:RUNNER_TEMP "smoke-$PID.txt"
$err = Join-Path $env:RUNNER_TEMP "smoke-err-$PID.txt"
# Start-Process waits for a windowed program and captures its output.
$p = Start-Process $Exe -ArgumentList '--smoke' -NoNewWindow -PassThru `
  -RedirectStandardOutput $out -RedirectStandardError $err
$null = $p.Handle  # keeps the exit code readable after the process ends
if (-not $p.WaitForExit(300000)) {
  $p.Kill($true)
  Get-Content $out, $err -ErrorAction SilentlyContinue
  throw "$Exe --smoke did not finish within 5 minutes"
}
Get-Content $out, $err
if ($p.ExitCode -ne 0) { throw "$Exe --smoke exited $($p.ExitCode)" }
$checks = @{
  'keyring backend is the Windows Credential Manager' = '^ok   keyring backend .*\[keyring\.backends\.Windows\.WinVaultKeyring\]'
  'binary files keep their bytes'                     = '^ok   binary files'
  'AppUserModelID is set'                             = '^ok   Windows AppUserModelID .*io\.github\.bucketchat\.BucketChat'
}
foreach ($name in $checks.Keys) {
  if (-not (Select-String -Path $out -Pattern $checks[$name] -Quiet)) { throw "smoke: not shown that $name" }
}
