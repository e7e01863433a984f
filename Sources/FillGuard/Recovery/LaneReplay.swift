import FillGuardCore

/// Rebuilds one symbol's machine from its journal part: the snapshot, then every input and
/// intent after it in sequence order, exactly as the lane applied them.
struct LaneReplay {
    var machine: SymbolStateMachine
    var position = JournalPosition()
    var snapshotLoaded = false
    var replayed = 0

    static func rebuild(_ symbol: Symbol, from part: JournalContents.Lane,
                        configuration: SymbolStateMachine.Configuration) throws(JournalError) -> LaneReplay {
        var replay: LaneReplay
        if let snapshot = part.snapshot {
            let image = try SnapshotCodec.decode(snapshot.payload)
            guard image.symbolName == symbol else {
                throw JournalError(.inconsistent, "the snapshot stored for \(symbol) is for \(image.symbolName)")
            }
            replay = LaneReplay(machine: SymbolStateMachine(restoring: image, configuration: configuration))
            replay.position.replayed(snapshot.sequence)
            replay.position.sinceSnapshot = 0
            replay.snapshotLoaded = true
        } else {
            replay = LaneReplay(machine: SymbolStateMachine(symbol: symbol, configuration: configuration))
        }
        var actions: [SymbolStateMachine.Action] = []
        for record in part.records {
            actions.removeAll(keepingCapacity: true)
            switch record.kind {
            case .input:
                let input = try JournalCodec.decodeInput(record.payload)
                // A refused input was refused live too; it changes nothing either way.
                try? input.apply(to: &replay.machine, emitting: &actions)
            case .intent:
                let operation = try JournalCodec.decodeOperation(record.payload)
                guard replay.machine.restoreSent(operation) else {
                    throw JournalError(.inconsistent, "intent \(record.sequence) of \(symbol) names order \(operation.orderID), which the journal never created; "
                                       + "a journal replays only with the replacement settings it was written with (native modify: \(configuration.nativeModify), "
                                       + "strategy: \(configuration.replaceStrategy.rawValue) now): recover with the same ones (fillguard: --no-modify, --strategy)")
                }
            case .snapshot:
                continue
            }
            replay.position.replayed(record.sequence)
            replay.replayed += 1
        }
        return replay
    }
}
