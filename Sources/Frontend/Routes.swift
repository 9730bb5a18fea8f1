import HTTPCore

/// The route table. API paths accept a trailing slash (the router ignores it); where copr-cli sends PUT or DELETE,
/// upstream's deprecated POST aliases are accepted too.
enum Routes {
    static func register(_ r: inout Router<RouteHandler>) {
        let get = ["GET"]
        let post = ["POST"]
        let put = ["PUT", "POST"]
        let delete = ["DELETE", "POST"]

        r.add(get, "/api_3", { _, _ in jsonOK(["version": 3]) })
        r.add(get, "/api_3/auth-check", ProjectAPI.authCheck)
        r.add(post, "/api_3/api-token", ProjectAPI.apiToken)

        r.add(get, "/api_3/project/list", ProjectAPI.list)
        r.add(get, "/api_3/project/search", ProjectAPI.search)
        r.add(post, "/api_3/project/add/:owner", ProjectAPI.add)
        r.add(put, "/api_3/project/edit/:owner/:project", ProjectAPI.edit)
        r.add(delete, "/api_3/project/delete/:owner/:project", ProjectAPI.delete)
        r.add(put, "/api_3/project/regenerate-repos/:owner/:project", ProjectAPI.regenerateRepos)
        r.add(put, "/api_3/project/fork/:owner/:project", ProjectAPI.fork)
        r.add(get, "/api_3/project/permissions/get/:owner/:project", PermissionAPI.get)
        r.add(put, "/api_3/project/permissions/set/:owner/:project", PermissionAPI.set)
        r.add(put, "/api_3/project/permissions/request/:owner/:project", PermissionAPI.request)
        r.add(get, "/api_3/project/permissions/can_build_in/:who/:owner/:project", PermissionAPI.canBuildIn)

        r.add(get, "/api_3/project-chroot", ChrootAPI.get)
        r.add(put, "/api_3/project-chroot/edit/:owner/:project/:chroot", ChrootAPI.edit)

        r.add(post, "/api_3/build/check-before-build", BuildAPI.checkBeforeBuild)
        r.add(post, "/api_3/build/create/upload", BuildAPI.createUpload)
        r.add(post, "/api_3/build/create/url", BuildAPI.createURL)
        r.add(post, "/api_3/build/create/scm", BuildAPI.createSCM)
        r.add(get, "/api_3/build/list", BuildAPI.list)
        r.add(put, "/api_3/build/cancel/:id", BuildAPI.cancel)
        r.add(delete, "/api_3/build/delete/list", BuildAPI.deleteList)
        r.add(delete, "/api_3/build/delete/:id", BuildAPI.deleteOne)
        r.add(get, "/api_3/build-chroot/list", BuildAPI.chrootList)
        r.add(get, "/api_3/build-chroot/list/:id", BuildAPI.chrootList)
        r.add(get, "/api_3/build-chroot/built-packages", BuildAPI.chrootBuiltPackages)
        r.add(get, "/api_3/build-chroot", BuildAPI.chrootGet)

        r.add(post, "/api_3/package/add/:owner/:project/:package/:type", PackageAPI.add)
        r.add(put, "/api_3/package/edit/:owner/:project/:package/:type", PackageAPI.edit)
        r.add(get, "/api_3/package/list", PackageAPI.list)
        r.add(get, "/api_3/package", PackageAPI.get)
        r.add(delete, "/api_3/package/delete", PackageAPI.delete)
        r.add(post, "/api_3/package/build", PackageAPI.build)
        r.add(get, "/api_3/monitor", PackageAPI.monitor)

        r.add(get, "/coprs/g/:group/:project/repo/:release/*file", RepoAPI.repoFileGroup)
        r.add(get, "/coprs/g/:group/:project/repo/:release", RepoAPI.repoFileGroup)
        r.add(get, "/coprs/:owner/:project/repo/:release/*file", RepoAPI.repoFile)
        r.add(get, "/coprs/:owner/:project/repo/:release", RepoAPI.repoFile)
        r.add(get, "/srpm-uploads/:dir/:file", BuildAPI.downloadUpload)

        r.add(get, "/", Web.home)
        r.add(get, "/api", Web.apiPage)
        r.add(get, "/coprs/build/:id", Web.build)
        r.add(get, "/coprs/g/:group/:project", Web.groupProject)
        r.add(get, "/coprs/:owner/:project", Web.project)
        r.add(get, "/coprs/:owner/:project/build/:id", Web.projectBuild)

        InternalAPI.register(&r)
    }

    /// Reads served on the server's inline path (one database closure, no Swift task). GET and HEAD only.
    static func registerInline(_ r: inout Router<InlineRoute>) {
        let get = ["GET"]
        r.add(get, "/api_3/mock-chroots/list", .connection(ProjectAPI.mockChroots))
        r.add(get, "/api_3/project", .batched(ProjectAPI.get))
        r.add(get, "/api_3/build/built-packages/:id", .connection(BuildAPI.builtPackages))
        r.add(get, "/api_3/build/:id", .batched(BuildAPI.get))
    }
}
