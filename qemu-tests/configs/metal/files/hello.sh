#!/bin/sh
# Installed by qemu-tests/configs/metal/config.ign from the HTTP server.
echo "hello from $(cat /etc/hostname)"
