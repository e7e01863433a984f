import FillGuard

extension SimulatedExchange {
    /// Waits until the manager has applied every report this exchange sent on the current
    /// connection, every request is answered and nothing is left in flight: a quiet moment.
    /// The manager must be consuming the current connection (the last `events()` stream).
    ///
    /// The count of reports is read before waiting for the manager and checked again after: if
    /// nothing new was sent meanwhile, every report counted was queued before the wait began
    /// (the manager counts an event only once it is queued), so the wait covered it.
    /// A report a reorder fault holds back is sent here: held is late, never lost.
    public func settle(_ manager: FillManager) async {
        while true {
            await waitUntilIdle()
            flushHeldReports()
            var sent = reportsOnCurrentConnection
            while manager.eventsReceived < sent {
                await Task.yield()
                sent = reportsOnCurrentConnection
            }
            await manager.waitUntilIdle()
            if reportsOnCurrentConnection == sent, manager.eventsReceived == sent, requestsInProgress == 0, !holdsReport { return }
        }
    }
}
