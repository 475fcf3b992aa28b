#!/bin/busybox sh
# /sbin/init of the QEMU tests' root filesystem (and of scripts/qemu-demo.sh's): once Ember
# has switched to this root, print what the machine looks like on the serial console, one
# fact per line, each starting with "EMBER-TEST ", then power off.
#
#   EMBER-TEST pid=1                           this process, if it is process 1
#   EMBER-TEST uptime=12.34                    seconds since the kernel started
#   EMBER-TEST cat /etc/hostname: ember-demo   each line of each file in /etc/ember-test/show
#   EMBER-TEST missing /etc/x                  a file of that list that does not exist
#   EMBER-TEST link /a -> /b                   a symlink of that list
#   EMBER-TEST ls /var/lib/data: hello.txt     the names in a directory of that list
#   EMBER-TEST mounted /srv xfs LABEL=srv      a filesystem of /etc/ember-test/mounts, mounted
#   EMBER-TEST mount / ext4 /dev/vda           each line of /proc/mounts
#   EMBER-TEST done                            the end
#
# /etc/ember-test/mounts has "LABEL FSTYPE DIRECTORY" lines: each is mounted read-only before
# the files are shown (a provisioned machine's own fstab would do this).
B=/bin/busybox
export PATH=/bin:/sbin
echo "EMBER-TEST pid=$$"
read -r up _ < /proc/uptime
echo "EMBER-TEST uptime=$up"
if [ -f /etc/ember-test/mounts ]; then
  while read -r label fstype dir; do
    [ -n "$label" ] || continue
    $B mkdir -p "$dir" 2> /dev/null
    if $B mount -t "$fstype" -o ro "LABEL=$label" "$dir" 2> /dev/null ||
      $B mount -t "$fstype" -o ro "/dev/disk/by-label/$label" "$dir" 2> /dev/null; then
      echo "EMBER-TEST mounted $dir $fstype LABEL=$label"
    else
      echo "EMBER-TEST unmountable LABEL=$label"
    fi
  done < /etc/ember-test/mounts
fi
if [ -f /etc/ember-test/show ]; then
  while read -r p; do
    [ -n "$p" ] || continue
    if [ -L "$p" ]; then
      echo "EMBER-TEST link $p -> $($B readlink "$p")"
    elif [ -d "$p" ]; then
      for n in $($B ls -A "$p"); do echo "EMBER-TEST ls $p: $n"; done
    elif [ -f "$p" ]; then
      echo "EMBER-TEST stat $p: $($B stat -c '%a %u:%g %s' "$p")"
      $B sed "s|^|EMBER-TEST cat $p: |" "$p"
      echo
    else
      echo "EMBER-TEST missing $p"
    fi
  done < /etc/ember-test/show
fi
while read -r dev dir fstype _; do
  echo "EMBER-TEST mount $dir $fstype $dev"
done < /proc/mounts
echo "EMBER-TEST done"
$B sync
$B poweroff -f
