// Timer helpers shared by the core and the adapters. Internal: not exported from any entry point.

/** Resolves after `ms` milliseconds; the timer is unref'd, so it never keeps the process alive. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Settles like `promise`, or rejects with `onTimeout()` after `ms` (unref'd timer). */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => unknown,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
