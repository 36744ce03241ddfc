# Ruby's dalli (binary protocol only), with SASL when USER and PASSWORD are
# given: every call checked.
# usage: ruby dalli_roundtrip.rb HOST:PORT [USER PASSWORD]
require 'dalli'

opts = { socket_timeout: 2, down_retry_delay: 60, compress: false }
opts.merge!(username: ARGV[1], password: ARGV[2]) if ARGV[1]
dc = Dalli::Client.new(ARGV[0], opts)
$fails = 0
def check(what, got, want)
  return if got == want
  $fails += 1
  warn "FAIL #{what}: got #{got.inspect}, want #{want.inspect}"
end

check('flush first', dc.flush.all? { |r| r }, true)
check('set', dc.set('k', 'v1').is_a?(Integer), true)
check('get', dc.get('k'), 'v1')
check('add existing', dc.add('k', 'x'), false)
check('add new', dc.add('k2', 'v2').is_a?(Integer), true)
check('replace', dc.replace('k2', 'v3').is_a?(Integer), true)
check('replace missing', [false, 0].include?(dc.replace('nope', 'x')), true)
check('replaced nothing', dc.get('nope'), nil)
check('raw set', dc.set('r', 'raw', 0, raw: true).is_a?(Integer), true)
dc.append('r', '+a')
dc.prepend('r', 'p+')
check('get raw', dc.get('r', raw: true), 'p+raw+a')
check('object', dc.set('obj', { 'a' => [1, 2] }).is_a?(Integer), true)
check('get object', dc.get('obj'), { 'a' => [1, 2] })
check('incr new', dc.incr('ctr', 1, 0, 10), 10)
check('incr', dc.incr('ctr', 5), 15)
check('decr', dc.decr('ctr', 100), 0)
check('incr missing', dc.incr('none', 1), nil)
check('cas', dc.cas('k') { |v| v + '!' }.is_a?(Integer), true)
check('get cas', dc.get('k'), 'v1!')
check('get_multi', dc.get_multi('k', 'k2', 'nope'), { 'k' => 'v1!', 'k2' => 'v3' })
check('touch', dc.touch('k', 100), true)
check('gat', dc.gat('k', 100), 'v1!')
check('delete', dc.delete('k2'), true)
check('delete missing', dc.delete('k2') ? true : false, false)
check('get missing', dc.get('k2'), nil)
big = 'b' * 300_000
check('set big', dc.set('big', big).is_a?(Integer), true)
check('get big', dc.get('big'), big)
multi = dc.multi { dc.set('q1', 'a'); dc.set('q2', 'b'); dc.delete('nope') }
check('get_multi quiet', dc.get_multi('q1', 'q2'), { 'q1' => 'a', 'q2' => 'b' })
version = dc.version.values.first
check('version', version.to_s.start_with?('1.6.18'), true)
check('stats', dc.stats.values.first.key?('curr_items'), true)
dc.alive!
check('flush', dc.flush.all? { |r| r }, true)
check('get flushed', dc.get('q1'), nil)
exit 1 if $fails > 0
puts 'all dalli checks passed'
