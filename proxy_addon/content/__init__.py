"""What flows inside allowed traffic, recognised: media, software and
torrents, personal data in uploads; and the token buckets that pace a
transfer.  Pure, no mitmproxy.  May import: ``classify``, ``policy``, ``urls``."""
