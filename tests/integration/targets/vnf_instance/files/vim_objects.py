#!/usr/bin/env python
"""Counts the Glance images and Nova servers of one name, as an observer independent of the module.

    vim_objects.py CLOUD IMAGE_NAME SERVER_NAME  ->  images=N servers=N
"""

import sys

import openstack


def main(cloud, image_name, server_name):
    conn = openstack.connect(cloud=cloud)
    images = list(conn.image.images(name=image_name))
    servers = [s for s in conn.compute.servers() if s.name == server_name]
    print("images=%d servers=%d" % (len(images), len(servers)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
