import Testing

@testable import CoprModel

@Suite struct BuildStateTests {
    @Test func numbersMatchUpstreamStatusEnum() {
        let expected: [BuildState: Int] = [
            .failed: 0, .succeeded: 1, .canceled: 2, .running: 3, .pending: 4, .skipped: 5,
            .starting: 6, .importing: 7, .forked: 8, .waiting: 9, .unknown: 1000,
        ]
        #expect(BuildState.allCases.count == 11)
        for state in BuildState.allCases {
            #expect(state.number == expected[state])
            #expect(BuildState(number: state.number) == state)
        }
        #expect(BuildState(number: 10) == nil)
        #expect(BuildState(number: -1) == nil)
    }

    @Test func rawValuesAreTheWireStrings() {
        #expect(
            BuildState.allCases.map(\.rawValue) == [
                "failed", "succeeded", "canceled", "running", "pending", "skipped",
                "starting", "importing", "forked", "waiting", "unknown",
            ]
        )
        #expect(BuildState(rawValue: "succeeded") == .succeeded)
        #expect(BuildState(rawValue: "Succeeded") == nil)
    }

    @Test func finalStates() {
        let final = Set(BuildState.allCases.filter(\.isFinal))
        #expect(final == [.succeeded, .skipped, .failed, .canceled, .forked])
        let watchEnds = Set(BuildState.allCases.filter(\.endsClientWatch))
        #expect(watchEnds == [.succeeded, .skipped, .failed, .canceled])
        #expect(!BuildState.waiting.isFinal)
        #expect(!BuildState.unknown.isFinal)
    }

    // MARK: Derivation (copr-protocol.md §5)

    @Test func canceledWinsOverEverything() {
        #expect(
            BuildStateDerivation.buildState(canceled: true, sourceState: .running, chrootStates: [.running])
                == .canceled
        )
        #expect(
            BuildStateDerivation.buildState(canceled: true, sourceState: .succeeded, chrootStates: [.succeeded])
                == .canceled
        )
        #expect(BuildStateDerivation.buildState(canceled: true, sourceState: .pending, chrootStates: []) == .canceled)
    }

    @Test(arguments: [BuildState.starting, .pending, .running, .importing, .failed])
    func sourceStatesThatShowThrough(source: BuildState) {
        // Even with chroots that say otherwise, these source states are the build state.
        #expect(
            BuildStateDerivation.buildState(canceled: false, sourceState: source, chrootStates: [.succeeded]) == source
        )
        #expect(BuildStateDerivation.buildState(canceled: false, sourceState: source, chrootStates: []) == source)
    }

    @Test func newUploadBuildIsPending() {
        // copr-api-behaviour.md §3.7: a fresh upload has source state pending and no chroots.
        #expect(BuildStateDerivation.buildState(canceled: false, sourceState: .pending, chrootStates: []) == .pending)
    }

    @Test func chrootPriorityOrder() {
        func derive(_ chroots: [BuildState]) -> BuildState {
            BuildStateDerivation.buildState(canceled: false, sourceState: .succeeded, chrootStates: chroots)
        }
        #expect(derive([.succeeded, .running, .failed]) == .running)
        #expect(derive([.succeeded, .starting, .pending]) == .starting)
        #expect(derive([.succeeded, .pending, .failed]) == .pending)
        // One failed chroot with the others succeeded gives a failed build.
        #expect(derive([.succeeded, .failed, .succeeded]) == .failed)
        #expect(derive([.succeeded, .skipped]) == .succeeded)
        #expect(derive([.skipped, .forked]) == .skipped)
        #expect(derive([.forked, .forked]) == .forked)
        #expect(derive([.succeeded, .waiting]) == .succeeded)
    }

    @Test func onlyWaitingChrootsReadPending() {
        #expect(
            BuildStateDerivation.buildState(
                canceled: false,
                sourceState: .succeeded,
                chrootStates: [.waiting, .waiting]
            )
                == .pending
        )
    }

    @Test func noChrootsFallsBackToSourceState() {
        #expect(
            BuildStateDerivation.buildState(canceled: false, sourceState: .succeeded, chrootStates: []) == .succeeded
        )
        #expect(BuildStateDerivation.buildState(canceled: false, sourceState: .skipped, chrootStates: []) == .skipped)
        #expect(BuildStateDerivation.buildState(canceled: false, sourceState: .waiting, chrootStates: []) == .pending)
    }

    @Test func chrootsOutsideTheListedStates() {
        #expect(
            BuildStateDerivation.buildState(canceled: false, sourceState: .succeeded, chrootStates: [.canceled])
                == .canceled
        )
        #expect(
            BuildStateDerivation.buildState(canceled: false, sourceState: .succeeded, chrootStates: [.importing])
                == .importing
        )
        #expect(
            BuildStateDerivation.buildState(canceled: false, sourceState: .succeeded, chrootStates: [.unknown])
                == .unknown
        )
        // A listed state still wins over an unlisted one.
        #expect(
            BuildStateDerivation.buildState(
                canceled: false,
                sourceState: .succeeded,
                chrootStates: [.canceled, .succeeded]
            )
                == .succeeded
        )
    }

    @Test func validationErrorDescription() {
        #expect(ValidationError(field: "name", message: "bad").description == "name: bad")
        #expect(ValidationError(field: nil, message: "bad").description == "bad")
        #expect(ValidationError("whole request").description == "whole request")
        #expect(ValidationError(field: "a", "m") == ValidationError(field: "a", message: "m"))
    }
}
