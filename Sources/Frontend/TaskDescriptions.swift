import CoprModel
import KoperProtocol
import KoperStore

/// Stored tasks → the wire contract.
enum TaskDescriptions {
    struct URLs: Sendable {
        /// Public base of the results tree.
        let results: String
        /// Public base of the Frontend (uploaded SRPMs are served under it).
        let publicBase: String
    }

    static func srpmURL(path: String?, url: String?, publicBase: String) -> String? {
        if let path { return "\(publicBase)/srpm-uploads/\(path)" }
        return url
    }

    static func summary(_ t: TaskRecord) -> TaskSummary {
        let arch = t.chroot.flatMap { ChrootName($0.name)?.arch } ?? "x86_64"
        let submitter = t.submitter ?? ""
        return TaskSummary(
            taskID: t.taskID,
            projectOwner: t.ownername,
            projectName: t.projectname,
            arch: arch,
            tags: ["arch_\(arch)"],
            sandbox: "\(t.ownername)/\(t.projectname)--\(submitter)",
            background: t.background,
            submittedOn: t.submittedOn ?? 0
        )
    }

    static func description(_ t: TaskRecord, urls: URLs) -> TaskDescription {
        let chrootName = t.chroot.flatMap { ChrootName($0.name) }
        let version = packageVersionText(epoch: t.pkgEpoch, version: t.pkgVersion, release: t.pkgRelease)
        var task = TaskDescription(
            taskID: t.taskID,
            chroot: chrootName,
            projectOwner: t.ownername,
            projectName: t.projectname,
            projectDirname: t.projectDirname,
            submitter: t.submitter ?? "",
            background: t.background,
            timeoutSeconds: t.timeout,
            enableNet: t.enableNet,
            sourceType: t.sourceType,
            sourceJSON: t.sourceJSON,
            srpmURL: srpmURL(path: t.srpmPath, url: t.srpmURL, publicBase: urls.publicBase),
            srpmSHA256: t.srpmSHA256,
            packageName: t.pkgName,
            packageVersion: version,
            resultDir: t.chroot?.resultDir ?? srpmResultDirName(buildID: t.buildID),
            usesDevelRepo: t.develMode,
            fedoraReview: t.fedoraReview,
            appstream: t.appstream,
            submittedOn: t.submittedOn ?? 0
        )
        if let chroot = t.chroot {
            var repos = [
                TaskDescription.Repo(
                    id: "copr_base",
                    name: "Copr repository",
                    baseURL: "\(urls.results)/\(t.ownername)/\(t.projectDirname)/\(chroot.name)/",
                    moduleHotfixes: t.moduleHotfixes
                )
            ]
            for (i, repo) in (t.additionalRepos + chroot.additionalRepos).enumerated() {
                let url = chrootName.map { RepoURLs.expand(repo, chroot: $0, resultsURL: urls.results) } ?? repo
                repos.append(.init(id: "copr_repo_\(i + 1)", name: "Additional repo \(i + 1)", baseURL: url))
            }
            task.repos = repos
            task.buildrootPackages = chroot.additionalPackages
            task.withOptions = chroot.withOptions
            task.withoutOptions = chroot.withoutOptions
            // The build's choice, else the chroot's, else the project's ("unchanged" defers to the next level).
            if t.isolation == "unchanged" {
                task.isolation = chroot.isolation == "unchanged" ? t.projectIsolation : chroot.isolation
            } else {
                task.isolation = t.isolation
            }
            task.bootstrap = t.bootstrap ?? chroot.bootstrap ?? t.projectBootstrap
            if chrootName == nil { task.arch = "x86_64" }
        }
        return task
    }
}
