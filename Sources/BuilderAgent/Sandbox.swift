import Glibc

/// How build steps are isolated (`--sandbox`).
enum SandboxKind: String, Sendable, CaseIterable {
    /// bubblewrap as the unprivileged builder user (docs: sandbox-and-hosts.md §1, "Recommended recipe").
    case bwrap
    /// No isolation: only `timeout` and `prlimit`. For hosts without user namespaces; the build sees the
    /// network and the host's file system.
    case none
}

/// Resource limits of one sandboxed step.
struct SandboxLimits: Sendable, Equatable {
    /// Wall-clock limit, enforced inside by `timeout` (exit 124) and outside by the runner's deadline.
    var timeoutSeconds: Int
    /// SIGTERM → SIGKILL grace for `timeout --kill-after`.
    var killAfterSeconds: Int = 10
    /// `prlimit --nproc`.
    var maxProcesses: Int
    /// `prlimit --as`; `nil` for none (an address-space limit breaks Go, JVMs and sanitizers).
    var addressSpaceBytes: Int?
    /// Size of each tmpfs (build tree, /tmp, /var/tmp, /dev/shm) and the cap on the results stream.
    var diskBytes: Int
}

/// The executables a sandboxed step needs, as absolute paths (inside the bwrap sandbox `/usr` is the host's,
/// so the same paths work there).
struct SandboxTools: Sendable, Equatable {
    var bwrap: String?
    var prlimit: String
    var timeout: String
    var shell: String = "/bin/sh"

    static func locate(_ host: HostEnvironment, kind: SandboxKind) throws(BuilderError) -> SandboxTools {
        SandboxTools(
            bwrap: kind == .bwrap ? try host.require("bwrap", package: "bubblewrap") : nil,
            prlimit: try host.require("prlimit", package: "util-linux"),
            timeout: try host.require("timeout", package: "coreutils")
        )
    }
}

/// A read-only file or directory of the host made visible inside the sandbox.
struct SandboxBind: Sendable, Equatable {
    var hostPath: String
    var sandboxPath: String
}

/// One sandboxed step: what the sandbox contains and which command runs in it. ``processSpec(tools:)``
/// turns it into the command line (pure, so tests can check it).
///
/// Layout inside bwrap: the host's `/usr` and `/etc` read-only, private `/proc`, `/dev`, size-capped tmpfs
/// on `/tmp`, `/var/tmp`, `/dev/shm` and the build tree ``topDirectory``; the read-only ``binds``; no host
/// directory is writable. New user, pid, ipc, uts, cgroup and network namespaces (the network is shared
/// only when ``shareNetwork``), nested user namespaces disabled, a new session (no TIOCSTI), and
/// `--die-with-parent`: bwrap's parent is koper-builder, so the sandbox dies with it.
///
/// The command runs as `prlimit … -- timeout … sh -c WRAPPER`; the wrapper (``SandboxScripts``) hands the
/// result files out on stdout.
struct SandboxPlan: Sendable, Equatable {
    var kind: SandboxKind
    var shareNetwork: Bool
    var hostName: String
    var binds: [SandboxBind]
    /// The build tree: a tmpfs inside bwrap; a host directory with `--sandbox none`.
    var topDirectory: String
    var environment: [String: String]
    var limits: SandboxLimits
    /// The step's command, run by the result wrapper.
    var command: [String]

    /// The top-level host paths that bwrap mirrors from the host (symlinks stay symlinks).
    static let hostRootEntries = ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]

    func processSpec(tools: SandboxTools, hostEnvironment: [String: String]) -> ProcessSpec {
        var inner: [String] = [tools.prlimit, "--nproc=\(self.limits.maxProcesses)", "--core=0"]
        if let addressSpace = self.limits.addressSpaceBytes {
            inner.append("--as=\(addressSpace)")
        }
        inner += [
            "--", tools.timeout, "--kill-after=\(self.limits.killAfterSeconds)", "\(self.limits.timeoutSeconds)",
            tools.shell, "-c", SandboxScripts.resultWrapper, "koper-sandbox", self.topDirectory,
        ]
        inner += self.command

        switch self.kind {
        case .none:
            var env = hostEnvironment
            for (key, value) in self.environment {
                env[key] = value
            }
            return ProcessSpec(
                executable: inner[0],
                arguments: Array(inner.dropFirst()),
                environment: env,
                workingDirectory: self.topDirectory
            )
        case .bwrap:
            let bwrap = tools.bwrap ?? "/usr/bin/bwrap"
            return ProcessSpec(
                executable: bwrap,
                arguments: self.bwrapArguments(rootEntries: Self.currentRootEntries()) + ["--"] + inner,
                environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"],
                workingDirectory: nil
            )
        }
    }

    /// bwrap's options. `rootEntries` says, for each of ``hostRootEntries`` present on the host, whether it is
    /// a symlink (and to what) or a directory.
    func bwrapArguments(rootEntries: [(path: String, symlinkTarget: String?)]) -> [String] {
        var a: [String] = [
            "--unshare-all"
        ]
        if self.shareNetwork {
            a.append("--share-net")
        }
        a += [
            "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--hostname", self.hostName,
            "--ro-bind", "/usr", "/usr",
        ]
        for entry in rootEntries {
            if let target = entry.symlinkTarget {
                a += ["--symlink", target, entry.path]
            } else {
                a += ["--ro-bind", entry.path, entry.path]
            }
        }
        a += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
        for tmp in ["/dev/shm", "/tmp", "/var/tmp"] {
            a += ["--size", "\(self.limits.diskBytes)", "--tmpfs", tmp]
        }
        a += ["--dir", "/build"]
        for bind in self.binds {
            a += ["--ro-bind", bind.hostPath, bind.sandboxPath]
        }
        a += ["--size", "\(self.limits.diskBytes)", "--tmpfs", self.topDirectory]
        a += ["--clearenv"]
        var env = self.environment
        env["PATH"] = env["PATH"] ?? "/usr/bin:/bin:/usr/sbin:/sbin"
        env["LANG"] = env["LANG"] ?? "C.UTF-8"
        env["HOME"] = env["HOME"] ?? self.topDirectory
        env["TMPDIR"] = env["TMPDIR"] ?? "/tmp"
        for key in env.keys.sorted() {
            a += ["--setenv", key, env[key]!]
        }
        a += ["--chdir", self.topDirectory]
        return a
    }

    /// The host's `/bin`, `/lib`, … entries: symlinks (merged /usr) or directories.
    static func currentRootEntries() -> [(path: String, symlinkTarget: String?)] {
        var out: [(path: String, symlinkTarget: String?)] = []
        for path in self.hostRootEntries {
            var st = stat()
            guard lstat(path, &st) == 0 else {
                continue
            }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                var buffer = [CChar](repeating: 0, count: 4096)
                let n = readlink(path, &buffer, buffer.count - 1)
                if n > 0 {
                    let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    out.append((path, target))
                }
            } else if (st.st_mode & S_IFMT) == S_IFDIR {
                out.append((path, nil))
            }
        }
        return out
    }
}

/// The shell scripts that run inside the sandbox. They are constants: every variable part is passed as a
/// positional argument, never pasted into the script text.
enum SandboxScripts {
    /// `sh -c resultWrapper koper-sandbox TOPDIR COMMAND…`: runs COMMAND with stdout redirected to the log
    /// (stderr), then, if it succeeded, streams every `TOPDIR/RPMS/**.rpm` and `TOPDIR/SRPMS/*.rpm` on the
    /// original stdout in the format ``ResultStreamReceiver`` reads. The build itself never gets that stdout.
    static let resultWrapper = """
        top=$1; shift
        exec 3>&1 1>&2
        printf 'KOPER-STARTED\\n' >&3
        "$@" 3>&-
        rc=$?
        if [ "$rc" -eq 0 ]; then
          for f in "$top"/RPMS/*/*.rpm "$top"/RPMS/*.rpm "$top"/SRPMS/*.rpm; do
            if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
            size=$(stat -c %s -- "$f") || exit 70
            printf 'KOPER-FILE %s %s\\n' "$size" "${f##*/}" >&3 || exit 70
            cat -- "$f" >&3 || exit 70
          done
          printf 'KOPER-END\\n' >&3 || exit 70
        fi
        exit "$rc"
        """

    /// Exit code of ``scmSourceBuild`` when cloning or checking out failed.
    static let scmCloneFailed: Int32 = 80
    /// Exit code of ``scmSourceBuild`` when the spec file is missing or ambiguous.
    static let scmSpecNotFound: Int32 = 81

    /// `sh -c scmSourceBuild koper-scm URL COMMITTISH SUBDIR SPEC BUILDHOST TOPDIR`: clones URL into
    /// `$HOME/checkout` (a tmpfs), checks out COMMITTISH (default branch when empty), finds the spec (SPEC
    /// relative to SUBDIR, or the only `*.spec` there) and runs `rpmbuild -bs` with the spec's directory as
    /// `%_sourcedir`. Sources must be in the checkout: there is no spectool here, so remote `Source:` URLs are
    /// not downloaded.
    static let scmSourceBuild = """
        url=$1 committish=$2 subdir=$3 spec=$4 buildhost=$5 top=$6
        src=$HOME/checkout
        export GIT_TERMINAL_PROMPT=0 GIT_ALLOW_PROTOCOL=http:https:git GIT_CONFIG_NOSYSTEM=1
        if [ -n "$committish" ]; then
          git clone --no-checkout -- "$url" "$src" || exit 80
          git -C "$src" checkout --quiet "$committish" -- || exit 80
        else
          git clone -- "$url" "$src" || exit 80
        fi
        git -C "$src" log -1 --format='koper: checked out commit %H' || exit 80
        cd -- "$src/$subdir" || { echo "koper: subdirectory '$subdir' does not exist in the checkout"; exit 81; }
        if [ -z "$spec" ]; then
          set -- *.spec
          if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
            echo "koper: expected exactly one *.spec file in '${subdir:-.}' (found: $*); set the package's spec path"
            exit 81
          fi
          spec=$1
        fi
        if [ ! -f "$spec" ] || [ -L "$spec" ]; then echo "koper: spec file '$spec' not found in the checkout"; exit 81; fi
        cd -- "$(dirname -- "$spec")" || exit 81
        echo "koper: building the SRPM from $(pwd)/${spec##*/} (sources are taken from that directory)"
        exec rpmbuild -bs --define "_topdir $top" --define "_sourcedir $(pwd)" --define "_buildhost $buildhost" "./${spec##*/}"
        """
}
