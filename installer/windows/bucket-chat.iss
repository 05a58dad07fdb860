; Inno Setup 6 script: Bucket Chat for Windows, installed per user (no administrator
; rights needed; an administrator may choose "all users" in the first dialog).
;
;   python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller build.spec
;   iscc /DAppVersion=0.1.0 installer\windows\bucket-chat.iss
;
; Input:  dist\bucket-chat\ (the PyInstaller folder: bucket-chat-desktop.exe, bucket-chat.exe,
;         _internal\). Output: dist\BucketChat-<version>-windows-x64-setup.exe
; Installs to %LOCALAPPDATA%\Programs\Bucket Chat, adds a Start-menu entry, optionally a
; desktop icon and the folder to the user's PATH (for bucket-chat.exe), and registers an
; uninstaller (Settings > Apps). Silent: setup.exe /VERYSILENT /CURRENTUSER [/TASKS=addtopath]

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z installer\windows\bucket-chat.iss
#endif
#define AppName "Bucket Chat"
#define AppExe "bucket-chat-desktop.exe"
#define Root "..\.."

[Setup]
; The AppId identifies the installation for upgrades and the uninstaller: never change it.
AppId={{2888EAC7-99A1-4EF7-97AE-5D457A14FDED}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Bucket Chat Desktop developers
AppPublisherURL=https://github.com/bucketchat/bucket-chat-desktop
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SourceDir={#Root}
OutputDir=dist
OutputBaseFilename=BucketChat-{#AppVersion}-windows-x64-setup
SetupIconFile=resources\icons\bucket-chat.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
LicenseFile=LICENSE
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes
ChangesEnvironment=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the bucket-chat command-line client to PATH"; GroupDescription: "Command line:"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the whole runtime folder: no stale modules from the old version.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "dist\bucket-chat\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; AppUserModelID: "io.github.bucketchat.BucketChat"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
{ PATH: the user's (HKCU\Environment) in a per-user install, the system's in an
  all-users one. Added only when the task is chosen, removed again by the uninstaller. }

function EnvRoot: Integer;
begin
  if IsAdminInstallMode then
    Result := HKEY_LOCAL_MACHINE
  else
    Result := HKEY_CURRENT_USER;
end;

function EnvKey: String;
begin
  if IsAdminInstallMode then
    Result := 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
  else
    Result := 'Environment';
end;

procedure AddToPath(Dir: String);
var
  Paths: String;
begin
  if not RegQueryStringValue(EnvRoot, EnvKey, 'Path', Paths) then
    Paths := '';
  if Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') > 0 then
    exit;
  if (Paths <> '') and (Copy(Paths, Length(Paths), 1) <> ';') then
    Paths := Paths + ';';
  RegWriteExpandStringValue(EnvRoot, EnvKey, 'Path', Paths + Dir);
end;

procedure RemoveFromPath(Dir: String);
var
  Paths: String;
  P: Integer;
begin
  if not RegQueryStringValue(EnvRoot, EnvKey, 'Path', Paths) then
    exit;
  Paths := ';' + Paths + ';';
  P := Pos(';' + Uppercase(Dir) + ';', Uppercase(Paths));
  if P = 0 then
    exit;
  Delete(Paths, P, Length(Dir) + 1);
  Paths := Copy(Paths, 2, Length(Paths) - 2);
  RegWriteExpandStringValue(EnvRoot, EnvKey, 'Path', Paths);
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and WizardIsTaskSelected('addtopath') then
    AddToPath(ExpandConstant('{app}'));
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
end;
