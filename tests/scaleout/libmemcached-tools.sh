# libmemcached picks the node from a hash of the key (modulo the number of
# nodes: the tools have no switch for ketama). Every client of the cluster
# must list the same nodes in the same order (export them once as
# MEMCACHED_SERVERS instead, and leave out --servers).
SERVERS=127.0.0.1:11211,127.0.0.1:11212,127.0.0.1:11213
memccp --servers=$SERVERS --set report.html logo.png
memccat --servers=$SERVERS --file=copy.html report.html
memcrm --servers=$SERVERS report.html logo.png
