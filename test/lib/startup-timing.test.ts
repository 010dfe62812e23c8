import test from 'ava';
import { startupMark, startupMarks } from '../../src/lib/startup-timing.js';

test('a start-up mark keeps the first time its name is reached; process_start is the process clock origin', async (t) => {
  startupMark('test_first');
  const first = startupMarks()['test_first']!;
  await new Promise((r) => setTimeout(r, 5));
  startupMark('test_first');
  startupMark('test_second');
  const marks = startupMarks();
  t.is(marks['test_first'], first, 'a later pass moved the mark');
  t.true(marks['test_second']! > first);
  t.is(marks['process_start'], performance.timeOrigin);
  t.true(Math.abs(first - Date.now()) < 60_000, 'marks are epoch milliseconds');
});
