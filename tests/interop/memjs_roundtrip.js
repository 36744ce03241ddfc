// Node's memjs (binary protocol only), with SASL when USER and PASSWORD
// are given: every call checked.
// usage: node memjs_roundtrip.js HOST:PORT [USER PASSWORD]
const memjs = require('memjs');

const opts = { retries: 0, timeout: 2, conntimeout: 2, logger: { log() {} } };
if (process.argv[3]) {
  opts.username = process.argv[3];
  opts.password = process.argv[4];
}
const mc = memjs.Client.create(process.argv[2], opts);
let fails = 0;
function check(what, got, want) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) {
    fails++;
    console.error(`FAIL ${what}: got ${g}, want ${w}`);
  }
}
const str = (r) => (r && r.value ? r.value.toString() : null);

(async () => {
  try {
    check('flush first', Object.values(await mc.flush()).every((v) => v), true);
    check('set', await mc.set('k', 'v1', { expires: 0 }), true);
    check('get', str(await mc.get('k')), 'v1');
    check('add existing', await mc.add('k', 'x'), false);
    check('add new', await mc.add('k2', 'v2'), true);
    check('replace', await mc.replace('k2', 'v3'), true);
    check('replace missing', await mc.replace('nope', 'x'), false);
    check('append', await mc.append('k', '+a'), true);
    check('get joined', str(await mc.get('k')), 'v1+a');
    check('increment new', (await mc.increment('ctr', 1, { initial: 10 })).value, 10);
    check('increment', (await mc.increment('ctr', 5, {})).value, 15);
    check('decrement', (await mc.decrement('ctr', 100, {})).value, 0);
    check('touch', await mc.touch('k', 100), true);
    check('delete', await mc.delete('k2'), true);
    check('delete missing', await mc.delete('k2'), false);
    check('get missing', str(await mc.get('k2')), null);
    const big = 'b'.repeat(300000);
    check('set big', await mc.set('big', big, {}), true);
    check('get big', str(await mc.get('big')), big);
    const stats = await new Promise((res) => mc.stats((err, server, s) => res(s || {})));
    check('stats', 'curr_items' in stats, true);
    check('version stat', String(stats.version).startsWith('1.6.18'), true);
  } catch (e) {
    fails++;
    console.error(`FAIL: ${e}`);
  }
  mc.close();
  if (fails) process.exit(1);
  console.log('all memjs checks passed');
})();
