import CoprModel
import KoperJSON
import Testing

@testable import KoperProtocol

@Suite struct WireContractTests {
    static let documented = """
        {"task_id": "42-fedora-41-x86_64", "build_id": 42, "chroot": "fedora-41-x86_64", "arch": "x86_64",
         "tags": ["arch_x86_64"], "project_owner": "alice", "project_name": "tools", "project_dirname": "tools",
         "submitter": "alice", "sandbox": "alice/tools--alice", "background": false, "timeout": 18000,
         "enable_net": false, "source_type": "upload", "source_json": {"pkg": "hello-1.0-1.src.rpm", "n": [1, 2.5, null]},
         "srpm_url": "http://frontend/srpm-uploads/r/hello-1.0-1.src.rpm", "srpm_sha256": null,
         "package_name": "hello", "package_version": "1.0-1", "result_dir": "00000042-hello",
         "repos": [{"id": "copr_base", "name": "Copr repository", "baseurl": "http://r/alice/tools/fedora-41-x86_64/"}],
         "buildroot_pkgs": [], "with_opts": [], "without_opts": [], "isolation": "default", "bootstrap": "default",
         "uses_devel_repo": false, "fedora_review": false, "appstream": false, "submitted_on": 1795000000}
        """

    @Test func theDocumentedDescriptionDecodesAndRoundTrips() throws {
        let task = try Wire.decode(TaskDescription.self, from: Array(Self.documented.utf8))
        try task.validate()
        #expect(task.taskID == TaskID(buildID: 42, chroot: "fedora-41-x86_64"))
        #expect(task.kind == .rpm)
        #expect(task.chroot?.arch == "x86_64")
        #expect(task.sourceJSON["n"] == [1, .double(2.5), nil])
        #expect(task.relativeResultPath == "alice/tools/fedora-41-x86_64/00000042-hello")
        #expect(task.srpmSHA256 == nil)
        let again = try Wire.decode(TaskDescription.self, from: try Wire.encode(task))
        #expect(again == task)
    }

    @Test func aMinimalSRPMTaskGetsTheDefaults() throws {
        let task = try Wire.decode(
            TaskDescription.self,
            from: Array(#"{"task_id": "7", "build_id": 7, "project_owner": "@g", "project_name": "p"}"#.utf8)
        )
        #expect(task.isSRPMTask)
        #expect(task.resultDir == "00000007")
        #expect(task.relativeResultPath == "@g/p/srpm-builds/00000007")
        #expect(task.timeoutSeconds == TaskDescription.defaultTimeoutSeconds)
        #expect(task.tags == ["arch_x86_64"])
        #expect(task.sourceType == "upload")
    }

    @Test(arguments: [
        (#"{"task_id": "1", "project_owner": "a", "project_name": "p"}"#, "build_id is required"),
        (
            #"{"task_id": "1", "build_id": "x", "project_owner": "a", "project_name": "p"}"#,
            "build_id must be an integer"
        ),
        (#"{"task_id": "1-", "build_id": 1, "project_owner": "a", "project_name": "p"}"#, "task_id is invalid"),
        (
            #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "chroot": "nope"}"#,
            "chroot is invalid"
        ),
        (#"[1]"#, "must be an object"),
        (#"{"#, "not valid JSON"),
    ])
    func malformedMessagesNameTheField(json: String, expected: String) {
        let error = #expect(throws: WireError.self) { try Wire.decode(TaskDescription.self, from: Array(json.utf8)) }
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
    }

    @Test(arguments: [
        #"{"task_id": "1", "build_id": 1, "project_owner": "a'b", "project_name": "p"}"#,
        #"{"task_id": "1", "build_id": 2, "project_owner": "a", "project_name": "p"}"#,
        #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "project_dirname": "../x"}"#,
        #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "result_dir": "a/b"}"#,
        #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "timeout": 0}"#,
        #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "with_opts": ["--define=x"]}"#,
        #"{"task_id": "1", "build_id": 1, "project_owner": "a", "project_name": "p", "repos": [{"id": "x]\n[y", "baseurl": "http://a/"}]}"#,
        #"{"task_id": "1-fedora-41-x86_64", "build_id": 1, "project_owner": "a", "project_name": "p"}"#,
    ])
    func validationRefusesUnsafeValues(json: String) throws {
        let task = try Wire.decode(TaskDescription.self, from: Array(json.utf8))
        #expect(throws: WireError.self) { try task.validate() }
    }

    @Test func taskIDsParseAndPrint() {
        #expect(TaskID("42-fedora-41-x86_64") == TaskID(buildID: 42, chroot: "fedora-41-x86_64"))
        #expect(TaskID("42") == TaskID(buildID: 42, chroot: nil))
        for bad in ["", "-", "0", "x-y", "42-", "-42"] { #expect(TaskID(bad) == nil, "\(bad)") }
        #expect(TaskID(buildID: 42, chroot: "epel-9-x86_64").description == "42-epel-9-x86_64")
    }

    @Test func actionsKeepTheirStoredFormAndTypeTheirData() throws {
        let fork = BackendAction(
            id: 3,
            payload: .fork(
                .init(
                    sourceOwnername: "a",
                    sourceDirname: "p",
                    targetOwnername: "b",
                    targetDirname: "q",
                    buildsMap: ["fedora-41-x86_64": ["00000001-x": "00000009-x"]]
                )
            )
        )
        let decoded = try Wire.decode(BackendAction.self, from: try Wire.encode(fork))
        #expect(decoded == fork)
        let stored = BackendAction(
            id: 4,
            actionType: "delete",
            data: ["object_type": "copr", "ownername": "a", "projectname": "p"]
        )
        #expect(stored.payload == .deleteProject(.init(ownername: "a", projectname: "p")))
        #expect(stored.data["object_type"] == "copr")
        let unknown = BackendAction(id: 5, actionType: "rawhide_to_release", data: [:])
        #expect(unknown.payload == .unsupported(type: "rawhide_to_release"))
        let broken = BackendAction(id: 6, actionType: "createrepo", data: ["chroot": 5])
        #expect(broken.payload == .unsupported(type: "createrepo"))
    }

    @Test func pollAnswersRoundTrip() throws {
        let poll = BackendPoll(
            generation: "abc.7",
            tasks: [
                TaskSummary(
                    taskID: TaskID(buildID: 9, chroot: nil),
                    projectOwner: "a",
                    projectName: "p",
                    arch: "x86_64",
                    tags: ["arch_x86_64"],
                    sandbox: "a/p--a",
                    background: true,
                    submittedOn: 5
                )
            ],
            cancels: [TaskID(buildID: 8, chroot: "fedora-41-x86_64")],
            actions: [
                BackendAction(
                    id: 1,
                    payload: .createrepo(
                        .init(ownername: "a", projectname: "p", projectDirname: "p", chroot: "fedora-41-x86_64")
                    )
                )
            ]
        )
        let json = try Wire.json(poll)
        #expect(json["tasks"]?.arrayValue?.first?["type"] == "srpm")
        #expect(json["cancels"] == ["8-fedora-41-x86_64"])
        #expect(try Wire.decode(BackendPoll.self, from: json) == poll)
        let update = BackendUpdate(
            updateID: "u",
            taskID: TaskID(buildID: 1, chroot: "f-1-x"),
            state: .succeeded,
            builtPackages: [BuiltPackage(name: "n", epoch: nil, version: "1", release: "1", arch: "noarch")]
        )
        let u = try Wire.json(update)
        // `epoch` is written even when absent (null), as API v3's built-packages answers have it.
        #expect(u["built_packages"]?.arrayValue?.first?.objectValue?.keys.contains("epoch") == true)
        #expect(u["built_packages"]?.arrayValue?.first?["epoch"] == .null)
        #expect(try Wire.encode(update) == (try Wire.encode(update)))
        #expect(try Wire.decode(BackendUpdate.self, from: u) == update)
    }
}
