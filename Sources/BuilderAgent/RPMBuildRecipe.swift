import CoprModel
import KoperProtocol

/// The `rpmbuild` method's macros and command line (pure): what makes a plain `rpmbuild` on a Debian host
/// produce packages that look like the chroot's.
///
/// - `%dist` from the chroot name (`fedora-41` → `.fc41`, `epel-9` → `.el9`), plus the distribution macros
///   specs branch on (`%fedora 41`, `%fc41 1`; `%rhel 9`, `%el9 1`, `%epel 9`).
/// - Copr's `%buildtag .copr<BUILD_ID>`, `%vendor`, `%copr_username`, `%copr_projectname`; `%_buildhost`.
/// - Fedora's debuginfo: `-debuginfo` and `-debugsource` subpackages for arch-specific packages, through
///   Fedora's `%install` override (redhat-rpm-config) and `find-debuginfo` from Debian's debugedit package.
/// - Debian runs `/bin/sh` = dash, and rpm's brp scripts use bash syntax (`brp-compress`: `read -d ''`),
///   which leaves man pages uncompressed; the scriptlets and every brp script run with bash instead.
///
/// `rpmbuild -ra` rebuilds the source package too (like mock's `--rebuild`), so the SRPM in the results
/// carries the dist tag. `--nodeps`: nothing resolves or installs BuildRequires here.
enum RPMBuildRecipe {
    /// Koper's macro file, loaded with `rpmbuild --load`.
    static let macrosFile = """
        # koper-builder: macros for rpmbuild on a non-Fedora (Debian) builder host.
        # Scriptlets and brp scripts run with bash: Debian's /bin/sh is dash and brp-compress uses bash syntax.
        %_buildshell /bin/bash
        %__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}
        %__brp_elfperms /bin/bash %{_rpmconfigdir}/brp-elfperms
        %__brp_strip /bin/bash %{_rpmconfigdir}/brp-strip %{__strip}
        %__brp_strip_static_archive /bin/bash %{_rpmconfigdir}/brp-strip-static-archive %{__strip}
        %__brp_strip_comment_note /bin/bash %{_rpmconfigdir}/brp-strip-comment-note %{__strip} %{__objdump}
        %__brp_remove_la_files /bin/bash %{_rpmconfigdir}/brp-remove-la-files
        # Fedora's debuginfo packaging (redhat-rpm-config): -debuginfo and -debugsource subpackages.
        %_enable_debug_packages 1
        %_debugsource_packages 1
        %_debuginfo_subpackages 1
        %_missing_build_ids_terminate_build 1
        %_include_minidebuginfo 1
        %install %{?_enable_debug_packages:%{?buildsubdir:%{debug_package}}}\\
        %%install\\
        %{nil}

        """

    /// Distribution macros of a chroot, as its `macros.dist` would define them.
    static func distributionMacros(_ chroot: ChrootName) -> [(String, String)] {
        guard let dist = chroot.distTag else {
            return []
        }
        var macros = [("dist", dist)]
        let numeric = chroot.version.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        guard numeric else {
            return macros
        }
        switch chroot.os {
        case "fedora":
            macros += [("fedora", chroot.version), ("fc\(chroot.version)", "1")]
        case "epel":
            macros += [("rhel", chroot.version), ("el\(chroot.version)", "1"), ("epel", chroot.version)]
        case "centos-stream":
            macros += [("rhel", chroot.version), ("el\(chroot.version)", "1"), ("centos", chroot.version)]
        default:
            break
        }
        return macros
    }

    /// `rpmbuild -ra --nodeps --load MACROS --define … [--with X]… SRPM`.
    static func arguments(
        rpmbuild: String,
        task: TaskDescription,
        chroot: ChrootName,
        srpmPath: String,
        topDirectory: String,
        temporaryDirectory: String,
        macrosPath: String,
        buildHost: String
    ) -> [String] {
        var argv = [rpmbuild, "-ra", "--nodeps", "--load", macrosPath]
        var defines: [(String, String)] = [
            ("_topdir", topDirectory),
            ("_tmppath", temporaryDirectory),
            ("_buildhost", buildHost),
        ]
        defines += self.distributionMacros(chroot)
        defines += [
            ("buildtag", task.buildTag),
            ("vendor", task.vendor),
            ("copr_username", task.projectOwner),
            ("copr_projectname", task.projectName),
        ]
        for (name, value) in defines {
            argv += ["--define", "\(name) \(value)"]
        }
        for option in task.withOptions {
            argv += ["--with", option]
        }
        for option in task.withoutOptions {
            argv += ["--without", option]
        }
        argv.append(srpmPath)
        return argv
    }
}
