// Test data for incremental reads: documents an incremental read from SINCE must take besides the
// ordinary changed ones (a document that left a filter, an ObjectId minted after SINCE with older
// dates, documents without dates), and one it must not.
import { ObjectId, type Document } from 'bson';
import { day, makeEvents, makeUsers, objectIdAt } from './dump-writer.ts';

export const SINCE = day(20);

/** Documents an incremental read from SINCE must take besides the ordinary changed ones, and some it must not. */
export function incrementalData(): Record<string, Document[]> {
  const users = makeUsers(30);
  // Captured offline, synced after SINCE with its original (older) dates: its ObjectId says when.
  const synced = { _id: ObjectId.createFromTime(Math.floor(SINCE.getTime() / 1000) + 3600), creation_date: day(2), update_date: day(2), email: 'synced@example.org' };
  // Minted one second before SINCE, old dates: not read.
  const older = { _id: ObjectId.createFromTime(Math.floor(SINCE.getTime() / 1000) - 1), creation_date: day(1), update_date: day(1), email: 'older@example.org' };
  const undated = [
    { _id: objectIdAt(700), email: 'no dates at all' },
    { _id: objectIdAt(701), creation_date: '2024-03-30', update_date: null, email: 'string date' },
    { _id: objectIdAt(702), email: 'no dates either' },
    // An old creation date, and an update_date the app wrote as a string: an edit cannot move it.
    { _id: objectIdAt(703), creation_date: day(1), update_date: '2024-03-30', email: 'update_date a string' },
  ];
  const recipes = [
    { _id: objectIdAt(5000), __t: 'menu', name: 'still a menu', creation_date: day(1), update_date: day(25) },
    // Was a menu, became a recipe after SINCE: must reach transform so its menus row can leave.
    { _id: objectIdAt(5001), __t: 'recipe', name: 'no longer a menu', creation_date: day(1), update_date: day(22) },
    { _id: objectIdAt(5002), __t: 'recipe', name: 'unchanged recipe', creation_date: day(1), update_date: day(1) },
  ];
  return { users: [...users, ...undated, older, synced], events: makeEvents(3), recipes };
}
