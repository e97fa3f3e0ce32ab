"""The technician CLI: enrol the box, add devices, write stickers, bind labels, diagnose."""
