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
        var previous = part.snapshot?.sequence
        var previousRecord: JournalRecord?
        for record in part.records {
            actions.removeAll(keepingCapacity: true)
            if let previousRecord, previousRecord.sequence == record.sequence, previousRecord != record {
                throw JournalError(.corrupted, "the journal of \(symbol) holds two different records numbered \(describe(record.sequence)); one of them is damaged (or was moved) and it cannot be trusted. "
                                   + "Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
            }
            try checkFollows(record, previous: previous, in: symbol)
            previous = record.sequence
            previousRecord = record
            switch record.kind {
            case .input:
                try JournalCodec.checkSameRules(record)
                let input = try JournalCodec.decodeInput(record.payload)
                if let named = input.symbol, named != symbol {
                    throw JournalError(.corrupted, "record \(describe(record.sequence)) of \(symbol)'s journal is about \(named); it was damaged or moved and the journal cannot be trusted")
                }
                // A refused input was refused live too; it changes nothing either way.
                try? input.apply(to: &replay.machine, emitting: &actions)
            case .intent:
                try JournalCodec.checkSameRules(record)
                let operation = try JournalCodec.decodeOperation(record.payload)
                guard operation.symbol == symbol else {
                    throw JournalError(.corrupted, "record \(describe(record.sequence)) of \(symbol)'s journal is an operation on \(operation.symbol); it was damaged or moved and the journal cannot be trusted")
                }
                guard replay.machine.restoreSent(operation) else {
                    throw JournalError(.inconsistent, "\(describe(record.sequence)) of \(symbol) names order \(operation.orderID), which the journal never created; "
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

    /// "input 7" or "intent 2 of input 7".
    private static func describe(_ sequence: UInt64) -> String { JournalPosition.describe(sequence) }

    /// Refuses a record that does not follow the one before it (the snapshot, or the start).
    /// A lane numbers its inputs 1, 2, 3 ... and each input's intents 1, 2, ... after it
    /// (`JournalPosition`), and a store loses records only at its very end (a torn or unsynced
    /// last write), so a hole with records after it means records went missing from the middle
    /// (or a sequence number was damaged): replaying around it would rebuild a wrong position.
    /// A record repeating the one before it is let through (its fills are deduplicated).
    private static func checkFollows(_ record: JournalRecord, previous: UInt64?, in symbol: Symbol) throws(JournalError) {
        let sequence = record.sequence
        if let previous, sequence == previous { return }
        let input = JournalPosition.input(of: sequence)
        let intent = JournalPosition.intent(of: sequence)
        let lastInput = previous.map(JournalPosition.input(of:)) ?? 0
        let lastIntent = previous.map(JournalPosition.intent(of:)) ?? 0
        let expected: String
        switch record.kind {
        case .input where intent == 0 && input == lastInput + 1: return
        case .intent where intent != 0 && input == lastInput && intent == lastIntent + 1: return
        case .input: expected = "input \(lastInput + 1)"
        case .intent: expected = "intent \(lastIntent + 1) of input \(lastInput), or input \(lastInput + 1)"
        case .snapshot: return
        }
        let found = intent == 0 ? "input \(input)" : "intent \(intent) of input \(input)"
        throw JournalError(.corrupted, "the journal of \(symbol) is missing records: after \(previous == nil ? "the start" : "input \(lastInput)\(lastIntent == 0 ? "" : " intent \(lastIntent)")") "
                           + "comes \(record.kind == .input ? "an input record" : "an intent record") numbered as \(found), where \(expected) was due; "
                           + "records are gone from the middle of the journal (or a sequence number is damaged) and it cannot be trusted. "
                           + "Restore it from a backup, or move it aside to start empty and let reconciliation rebuild from the broker")
    }
}
