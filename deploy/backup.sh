#!/bin/sh
# A pg_dump (custom format: compressed, restored with pg_restore) of the database in
# DATABASE_URL into BACKUP_DIR as smartflow-<UTC time>.dump; dumps older than
# BACKUP_KEEP_DAYS days are then deleted. Run by smartflow-backup.service; by hand:
#   sudo -u smartflow sh -c 'set -a; . /etc/smartflow/env; BACKUP_DIR=/var/backups/smartflow /srv/smartflow/deploy/backup.sh'
# A dump is written under a temporary name and renamed when complete, so a dump that
# failed half-way never looks like a backup. Restore: docs/deploy.md, "Backups".
set -eu
: "${DATABASE_URL:?DATABASE_URL is not set (it is in /etc/smartflow/env)}"
dir="${BACKUP_DIR:?BACKUP_DIR is not set}"
keep="${BACKUP_KEEP_DAYS:-14}"
name="smartflow-$(date -u +%Y%m%dT%H%M%SZ).dump"
umask 077
pg_dump --format=custom --no-owner --no-privileges --dbname="$DATABASE_URL" --file="$dir/.$name.partial"
mv "$dir/.$name.partial" "$dir/$name"
find "$dir" -maxdepth 1 -name 'smartflow-*.dump' -mtime "+$keep" -delete
echo "Backed up to $dir/$name ($(du -h "$dir/$name" | cut -f1))"
