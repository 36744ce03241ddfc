<?php
// A PHP session stored through php-memcached with its default settings
// (memcached.sess_binary_protocol and sess_locking on): `write` starts a
// session, stores values and prints its id; `read ID` resumes it in
// another process and prints what it holds as JSON.
// usage: php php_session.php HOST:PORT write | read ID
ini_set('session.save_handler', 'memcached');
ini_set('session.save_path', $argv[1]);
ini_set('session.use_cookies', '0');
ini_set('session.use_strict_mode', '0');
if (ini_get('memcached.sess_binary_protocol') !== '1') {
    fwrite(STDERR, "sess_binary_protocol is not on by default\n");
    exit(3);
}
if ($argv[2] === 'read') {
    session_id($argv[3]);
}
if (!session_start()) {
    fwrite(STDERR, "session_start() failed\n");
    exit(2);
}
if ($argv[2] === 'write') {
    $_SESSION['n'] = 42;
    $_SESSION['big'] = str_repeat('x', 5000);
    echo session_id(), "\n";
} else {
    echo json_encode([$_SESSION['n'] ?? null, strlen($_SESSION['big'] ?? '')]), "\n";
    $_SESSION['n'] += 1;
}
if (!session_write_close()) {
    fwrite(STDERR, "session_write_close() failed\n");
    exit(2);
}
