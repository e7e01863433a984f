import FillGuard

extension SimulatedExchange {
    /// Waits until the manager has applied every report this exchange sent on the current
    /// connection, every request is answered and nothing is left in flight: a quiet moment.
    /// The manager must be consuming the current connection (the last `events()` stream): if
    /// nothing runs its `run()`, this waits for ever (use `settle(_:atMost:)` to bound it). It
    /// returns early when its task is cancelled.
    ///
    /// The count of reports is read before waiting for the manager and checked again after: if
    /// nothing new was sent meanwhile, every report counted was queued before the wait began
    /// (the manager counts an event only once it is queued), so the wait covered it.
    /// A report a reorder fault holds back is sent here: held is late, never lost.
    public func settle(_ manager: FillManager) async {
        _ = await settle(manager, until: nil)
    }

    /// Waits as `settle(_:)` does, for at most `limit`: true when the quiet moment came, false
    /// when `limit` passed (or the task was cancelled) first, e.g. because nothing consumes
    /// the exchange's reports.
    @discardableResult
    public func settle(_ manager: FillManager, atMost limit: Duration) async -> Bool {
        await settle(manager, until: ContinuousClock.now + limit)
    }

    private func settle(_ manager: FillManager, until deadline: ContinuousClock.Instant?) async -> Bool {
        /// Whether the wait goes on: neither cancelled nor past its deadline.
        func waiting() -> Bool {
            !Task.isCancelled && deadline.map { ContinuousClock.now < $0 } ?? true
        }
        while waiting() {
            await waitUntilIdle()
            flushHeldReports()
            var sent = reportsOnCurrentConnection
            while manager.eventsReceived < sent {
                guard waiting() else { return false }
                await Task.yield()
                sent = reportsOnCurrentConnection
            }
            if let deadline {
                guard await manager.waitUntilIdle(atMost: ContinuousClock.now.duration(to: deadline)) else { return false }
            } else {
                await manager.waitUntilIdle()
            }
            if reportsOnCurrentConnection == sent, manager.eventsReceived == sent, requestsInProgress == 0, !holdsReport { return true }
        }
        return false
    }
}
