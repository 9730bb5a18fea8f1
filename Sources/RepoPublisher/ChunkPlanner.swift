/// A run of entries that becomes one gzip member per document; `reuse` is the old chunk when its members
/// can be kept as they are.
struct PlannedChunk {
    var range: Range<Int>
    var reuse: Chunk?
}

/// Decides which consecutive packages share a gzip member, changing as few members as possible.
///
/// Each package keeps the chunk it was in; new packages join the chunk of the package before them (the first
/// ones, of the package after). A chunk whose package list is exactly the old one keeps its members; every
/// other chunk is recompressed. Recompressed chunks that grew past twice the target are split, and ones that
/// shrank below a quarter of it are merged into a neighbour, so chunks stay near the target as the repository
/// changes.
enum ChunkPlanner {
    /// A member never holds more uncompressed bytes than this (per document) unless one package alone does.
    static let maxMemberBytes = 1 << 20

    /// - Parameters:
    ///   - entries: the new entries in repository order.
    ///   - entryChunks: per entry, the old chunk it comes from with unchanged fragments, or -1.
    ///   - generated: fragments rendered in this publish, by entry index (their sizes guide splitting).
    static func plan(
        entries: [IndexEntry],
        entryChunks: [Int32],
        generated: [Int: GeneratedFragments],
        oldChunks: [Chunk],
        packagesPerMember: Int
    ) -> [PlannedChunk] {
        guard !entries.isEmpty else { return [] }
        let target = max(1, packagesPerMember)
        func size(_ index: Int) -> Int {
            if let fragments = generated[index] {
                return fragments.raw.map(\.count).max() ?? 0
            }
            let fragments = entries[index].fragments
            return max(fragments.primary.length, fragments.filelists.length, fragments.other.length)
        }
        // Chunk id per entry: its own, else the previous entry's, else (leading new entries) the next one's.
        var assigned = entryChunks
        var previous: Int32 = -1
        for index in assigned.indices {
            if assigned[index] >= 0 { previous = assigned[index] } else { assigned[index] = previous }
        }
        var following: Int32 = -1
        for index in assigned.indices.reversed() {
            if assigned[index] >= 0 { following = assigned[index] } else { assigned[index] = following }
        }
        // Runs of equal ids; clean when the run is exactly the old chunk's package list.
        var runs: [(range: Range<Int>, clean: Bool, id: Int?)] = []
        var start = 0
        for index in 1...entries.count {
            if index == entries.count || assigned[index] != assigned[start] {
                let id = assigned[start] >= 0 ? Int(assigned[start]) : nil
                var clean = false
                if let id, id < oldChunks.count, oldChunks[id].count == index - start {
                    clean = entryChunks[start..<index].allSatisfy { Int($0) == id }
                }
                runs.append((start..<index, clean, id))
                start = index
            }
        }
        // Merge small dirty runs into a neighbour (which then becomes dirty too).
        var merged: [(range: Range<Int>, clean: Bool, id: Int?)] = []
        for run in runs {
            if let last = merged.last, !(last.clean && run.clean),
                run.range.count < max(1, target / 4) || last.range.count < max(1, target / 4),
                last.range.count + run.range.count <= 2 * target
            {
                merged[merged.count - 1] = (last.range.lowerBound..<run.range.upperBound, false, nil)
            } else {
                merged.append(run)
            }
        }
        // Split dirty runs that are too large.
        var plan: [PlannedChunk] = []
        for run in merged {
            if run.clean, let id = run.id {
                plan.append(PlannedChunk(range: run.range, reuse: oldChunks[id]))
                continue
            }
            let bytes = run.range.reduce(0) { $0 + size($1) }
            if run.range.count <= 2 * target && bytes <= Self.maxMemberBytes {
                plan.append(PlannedChunk(range: run.range, reuse: nil))
                continue
            }
            // Even pieces of at most `target` packages and half the byte limit.
            let pieces = max(
                (run.range.count + target - 1) / target,
                (bytes + Self.maxMemberBytes / 2 - 1) / (Self.maxMemberBytes / 2)
            )
            let perPiece = (run.range.count + pieces - 1) / pieces
            var pieceStart = run.range.lowerBound
            var pieceBytes = 0
            for index in run.range {
                let size = size(index)
                if index > pieceStart && (index - pieceStart >= perPiece || pieceBytes + size > Self.maxMemberBytes / 2)
                {
                    plan.append(PlannedChunk(range: pieceStart..<index, reuse: nil))
                    pieceStart = index
                    pieceBytes = 0
                }
                pieceBytes += size
            }
            plan.append(PlannedChunk(range: pieceStart..<run.range.upperBound, reuse: nil))
        }
        return plan
    }

}
