#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import FillGuardCore

/// A snapshot is a version byte, the machine's image as JSON (positions and orders: small, and
/// readable by a person in an emergency), then the execution ids the machine remembers for
/// duplicate detection, in the journal's compact binary form.
///
/// Version 2 (current): the image's format 2 (orders by slot, retired orders' records, the
/// execution memory's counters), then the older generation of remembered ids, then the newer
/// one (each in the order applied; at most twice the execution window in all). Version 1 (still read): the
/// image's format 1, then every execution id ever applied.
enum SnapshotCodec {
    static let version: UInt8 = 2

    static func encode(_ image: SymbolStateMachine.Image) throws -> [UInt8] {
        let json = try JSONEncoder().encode(image)
        let previous = image.previousExecutionIDs
        let current = image.currentExecutionIDs
        var writer = ByteWriter(capacity: json.count + (previous.count + current.count) * 16 + 16)
        writer.write(version)
        writer.write(varint: UInt64(json.count))
        writer.bytes.append(contentsOf: json)
        for generation in [previous, current] {
            writer.write(varint: UInt64(generation.count))
            for id in generation { writer.write(id.rawValue) }
        }
        return writer.bytes
    }

    static func decode(_ payload: [UInt8]) throws(JournalError) -> SymbolStateMachine.Image {
        guard let first = payload.first else { throw JournalError(.corrupted, "an empty snapshot") }
        guard first <= version else {
            throw JournalError(.unsupportedVersion, "snapshot format \(first) is newer than this FillGuard reads (\(version)); upgrade FillGuard")
        }
        guard first >= 1 else { throw JournalError(.corrupted, "a snapshot of unknown format \(first)") }
        var reader = ByteReader(payload)
        let json: ArraySlice<UInt8>
        var generations: [[ExecutionID]] = []
        do throws(ByteReader.Damaged) {
            _ = try reader.byte()
            let length = Int(clamping: try reader.varint())
            json = try reader.bytes(length)
            for _ in 0..<(first == 1 ? 1 : 2) {
                let count = Int(clamping: try reader.varint())
                guard count <= payload.count else { throw ByteReader.Damaged() }
                var ids: [ExecutionID] = []
                ids.reserveCapacity(count)
                for _ in 0..<count { ids.append(ExecutionID(try reader.string())) }
                generations.append(ids)
            }
            guard reader.isAtEnd else { throw ByteReader.Damaged() }
        } catch {
            throw JournalError(.corrupted, "a snapshot is cut short or damaged")
        }
        do {
            var image = try JSONDecoder().decode(SymbolStateMachine.Image.self, from: Data(json))
            if first == 1 {
                guard image.isLegacyFormat else { throw JournalError(.corrupted, "a version 1 snapshot holds a newer image") }
                image.adoptLegacyExecutionIDs(Set(generations[0]))
            } else {
                guard !image.isLegacyFormat else { throw JournalError(.corrupted, "a version 2 snapshot holds an old image") }
                image.previousExecutionIDs = generations[0]
                image.currentExecutionIDs = generations[1]
            }
            return image
        } catch let error as JournalError {
            throw error
        } catch {
            throw JournalError(.corrupted, "a snapshot could not be decoded: \(error)")
        }
    }
}
