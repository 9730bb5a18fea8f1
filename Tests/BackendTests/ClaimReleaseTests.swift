import Foundation
import TestSupport
import Testing

@testable import Backend

/// A Backend killed after the Frontend applied its claim but before it saved the claim's job file left the task
/// `starting` for good (issue 10). A starting Backend hands back every task claimed under its worker id that no job
/// file names (`POST /backend/release-claims`), and the task is built.
@Suite(.serialized, .requires(BackendStack.requirements))
struct ClaimReleaseTests {
    @Test func aClaimWithoutAJobFileIsHandedBackAndBuilt() async throws {
        try await BackendStack.run { stack in
            let id = try await stack.frontend.upload(
                try await SRPMFixture.slow(name: "orphan", seconds: 1),
                project: stack.project
            )
            // The claim the killed Backend made: same worker id as the Backend started below, no job file.
            let task = "\(id)-\(FrontendProcess.chroot)"
            let claim = try await stack.frontend.backendPost(
                "/backend/claim",
                json: #"{"task_id": "\#(task)", "worker_id": "backend-tests"}"#
            )
            #expect(claim.status == 200 && claim.body["claimed"]?.boolValue == true, "\(claim.body.text)")
            #expect(try await stack.frontend.state(id) == "starting")

            // Another worker's claim is not touched by a release in this worker's name.
            let foreign = try await stack.frontend.backendPost(
                "/backend/release-claims",
                json: #"{"worker_id": "another-backend", "keep": []}"#
            )
            #expect(foreign.status == 200 && foreign.body["released"]?.arrayValue?.isEmpty == true)
            #expect(try await stack.frontend.state(id) == "starting")

            _ = try await stack.startBackend()
            #expect(try await stack.waitForState(id, ["succeeded", "failed"], within: .seconds(120)) == "succeeded")
            #expect(stack.logged("handed back a task claimed before a restart"))
            #expect(stack.buildDirs == [String(format: "%08d", id) + "-orphan"])
        }
    }

    @Test func releaseClaimsRefusesBadInput() async throws {
        try await BackendStack.run { stack in
            let missing = try await stack.frontend.backendPost("/backend/release-claims", json: #"{"keep": []}"#)
            #expect(missing.status == 400)
            let empty = try await stack.frontend.backendPost(
                "/backend/release-claims",
                json: #"{"worker_id": "", "keep": []}"#
            )
            #expect(empty.status == 400)
            let badTask = try await stack.frontend.backendPost(
                "/backend/release-claims",
                json: #"{"worker_id": "w", "keep": ["x-y"]}"#
            )
            #expect(badTask.status == 400)
        }
    }
}
