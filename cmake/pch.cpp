// Translation unit that carries flowlab's precompiled header.
