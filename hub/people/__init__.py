"""Who is at the door: a person told apart from motion, on the hub, from the small frames a
doorbell sends while motion goes on (:mod:`porch.core.wire`'s ``Glance``)."""
