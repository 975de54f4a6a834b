/** Store.prune's arguments, checked the same way by every engine. */
export function checkPruneArgs(before: number, batchSize: number): void {
  if (!Number.isFinite(before)) throw new RangeError(`prune: before must be a time in epoch milliseconds, got ${before}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`prune: batchSize must be a positive integer, got ${batchSize}`);
}
