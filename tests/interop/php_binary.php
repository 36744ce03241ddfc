<?php
// php-memcached with Memcached::OPT_BINARY_PROTOCOL (and SASL credentials
// when USER and PASSWORD are given): every call checked.
// usage: php php_binary.php HOST PORT [USER PASSWORD]
$m = new Memcached();
$m->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
$m->setOption(Memcached::OPT_COMPRESSION, false);
if (isset($argv[3])) {
    $m->setSaslAuthData($argv[3], $argv[4]);
}
$m->addServer($argv[1], (int)$argv[2]);
$fails = 0;
function check($what, $got, $want) {
    global $fails, $m;
    if ($got !== $want) {
        $fails++;
        fwrite(STDERR, "FAIL $what: got " . var_export($got, true) . ", want "
            . var_export($want, true) . " (" . $m->getResultMessage() . ")\n");
    }
}
check('flush first', $m->flush(), true);
check('set', $m->set('k', 'v1'), true);
check('get', $m->get('k'), 'v1');
check('add existing', $m->add('k', 'x'), false);
check('add result', $m->getResultCode(), Memcached::RES_DATA_EXISTS);
check('add new', $m->add('k2', 'v2'), true);
check('replace', $m->replace('k2', 'v3'), true);
check('replace missing', $m->replace('nope', 'x'), false);
check('append', $m->append('k', '+a'), true);
check('prepend', $m->prepend('k', 'p+'), true);
check('get joined', $m->get('k'), 'p+v1+a');
check('array', $m->set('arr', [1, 'two' => 2]), true);
check('get array', $m->get('arr'), [1, 'two' => 2]);
check('int', $m->set('int', 5), true);
check('get int', $m->get('int'), 5);
check('increment new', $m->increment('ctr', 1, 10), 10);
check('increment', $m->increment('ctr', 5), 15);
check('decrement', $m->decrement('ctr', 100), 0);
$cas = null;
$got = $m->get('k', null, Memcached::GET_EXTENDED);
check('get extended', $got['value'], 'p+v1+a');
check('cas', $m->cas($got['cas'], 'k', 'swapped'), true);
check('cas stale', $m->cas($got['cas'], 'k', 'again'), false);
check('getMulti', $m->getMulti(['k', 'k2', 'nope']), ['k' => 'swapped', 'k2' => 'v3']);
check('touch', $m->touch('k', 100), true);
check('delete', $m->delete('k2'), true);
check('delete missing', $m->delete('k2'), false);
check('get missing', $m->get('k2'), false);
check('miss code', $m->getResultCode(), Memcached::RES_NOTFOUND);
$big = str_repeat('b', 300000);
check('set big', $m->set('big', $big), true);
check('get big', $m->get('big'), $big);
check('setMulti', $m->setMulti(['m1' => 'a', 'm2' => 'b']), true);
check('getMulti 2', $m->getMulti(['m1', 'm2']), ['m1' => 'a', 'm2' => 'b']);
$v = $m->getVersion();
check('version', is_array($v) && count($v) === 1 && strncmp(reset($v), '1.6.18', 6) === 0, true);
$s = $m->getStats();
check('stats', is_array($s) && isset(reset($s)['curr_items']), true);
check('flush', $m->flush(), true);
check('get flushed', $m->get('m1'), false);
if ($fails > 0) {
    exit(1);
}
echo "all php-memcached binary checks passed\n";
