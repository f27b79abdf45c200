// A sleep that can be cut short: relays and consumers wait for their poll
// interval, or for a kick (a commit, a publish, a finished job), whichever
// comes first. A kick while nobody sleeps is remembered, so it is never lost.
export interface Alarm {
  sleep(ms: number): Promise<void>;
  /** Wakes the sleeper now, or makes the next sleep return at once. */
  ring(): void;
  /** Wakes the sleeper if there is one; otherwise does nothing. */
  wakeIfSleeping(): void;
}

export function createAlarm(): Alarm {
  let wake: (() => void) | undefined;
  let rung = false;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        if (rung) {
          rung = false;
          return resolve();
        }
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
        wake = done;
      }),
    ring() {
      if (wake) wake();
      else rung = true;
    },
    wakeIfSleeping() {
      wake?.();
    },
  };
}
